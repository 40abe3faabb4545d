// Fuzz harness: bytes -> the NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID parsers and the
// message builder of teardown/detail/notify_socket.hpp, each checked against a plain model of
// systemd's rules written here, plus their invariants (the socket address holds exactly the
// name; a message is one datagram of whole KEY=VALUE lines). Any mismatch aborts.
#include <teardown/detail/notify_socket.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <system_error>

namespace notify = teardown::detail::notify;

namespace {

[[noreturn]] void fail(const char* what, std::string_view input) {
  std::fprintf(stderr, "service fuzz: %s on '%.*s'\n", what, static_cast<int>(input.size()), input.data());
  std::abort();
}

/// systemd's rule: an absolute path, or '@' and a name, fitting sun_path with its terminator.
bool model_socket_valid(std::string_view text) {
  if (text.empty() || (text[0] != '/' && text[0] != '@')) return false;
  const std::string_view name = text[0] == '@' ? text.substr(1) : text;
  return !name.empty() && name.size() <= 107 && name.find('\0') == std::string_view::npos;
}

void check_socket(std::string_view text) {
  const notify::SocketAddress parsed = notify::parse_socket_address(text);
  using Kind = notify::SocketAddress::Kind;
  if ((parsed.kind == Kind::unset) != text.empty()) fail("unset is exactly the empty value", text);
  if (text.empty()) return;
  const bool valid = parsed.kind == Kind::path || parsed.kind == Kind::abstract;
  if (valid != model_socket_valid(text)) fail("parser and model disagree", text);
  if (!valid) {
    if (parsed.problem.empty()) fail("an invalid address without a reason", text);
    return;
  }
  const bool abstract = parsed.kind == Kind::abstract;
  const std::string_view name = abstract ? text.substr(1) : text;
  const std::size_t start = abstract ? 1 : 0;
  if (parsed.address.sun_family != AF_UNIX) fail("not AF_UNIX", text);
  if (abstract && parsed.address.sun_path[0] != '\0') fail("an abstract name without its leading NUL", text);
  if (std::memcmp(parsed.address.sun_path + start, name.data(), name.size()) != 0)
    fail("name not copied", text);
  const std::size_t expected = offsetof(sockaddr_un, sun_path) + start + name.size() + (abstract ? 0 : 1);
  if (parsed.length != expected) fail("wrong address length", text);
  if (!abstract && parsed.address.sun_path[name.size()] != '\0') fail("a path without its terminator", text);
}

/// A positive decimal within `max`, by std::from_chars.
void check_number(std::string_view text, notify::Number parsed, std::uint64_t max) {
  using Kind = notify::Number::Kind;
  if ((parsed.kind == Kind::unset) != text.empty()) fail("unset is exactly the empty value", text);
  if (text.empty()) return;
  bool digits_only = true;
  for (const char c : text) digits_only = digits_only && c >= '0' && c <= '9';
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool valid =
      digits_only && error == std::errc() && end == text.data() + text.size() && value > 0 && value <= max;
  if (valid != (parsed.kind == Kind::value)) fail("number parser and from_chars disagree", text);
  if (valid && parsed.value != value) fail("wrong value", text);
}

bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t length = lead < 0x80           ? 1
                               : (lead >> 5) == 0x6  ? 2
                               : (lead >> 4) == 0xE  ? 3
                               : (lead >> 3) == 0x1E ? 4
                                                     : 0;
    if (length == 0 || i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k)
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    i += length;
  }
  return true;
}

void check_message(std::string_view text) {
  notify::Message message;
  message.add("EXTEND_TIMEOUT_USEC", static_cast<std::uint64_t>(text.size()));
  message.add("STATUS", text);
  const std::string_view sent = message.view();
  const std::string_view extend = "EXTEND_TIMEOUT_USEC=";
  if (sent.size() > notify::max_message) fail("a message longer than one datagram", text);
  if (sent.substr(0, extend.size()) != extend) fail("the first line is lost", text);
  const std::size_t first_end = sent.find('\n');
  const std::string_view status = sent.substr(first_end + 1);
  if (status.substr(0, 7) != "STATUS=" || status.back() != '\n') fail("the STATUS line is not whole", text);
  const std::string_view value = status.substr(7, status.size() - 8);
  if (value.find('\n') != std::string_view::npos || value.find('\0') != std::string_view::npos)
    fail("a value added a line of its own", text);
  if (value.size() > text.size()) fail("a value grew", text);
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char expected = (text[i] == '\n' || text[i] == '\0') ? ' ' : text[i];
    if (value[i] != expected) fail("a value is not the text's prefix", text);
  }
  if (value.size() < text.size() && sent.size() < notify::max_message - 4)
    fail("cut with room to spare", text);
  if (valid_utf8(text) && !valid_utf8(value)) fail("a cut split a UTF-8 sequence", text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_socket(text);
  check_number(text, notify::parse_watchdog_usec(text),
               static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 1000));
  check_number(text, notify::parse_watchdog_pid(text),
               static_cast<std::uint64_t>(std::numeric_limits<pid_t>::max()));
  check_message(text);
  return 0;
}
