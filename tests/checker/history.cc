#include "tests/checker/history.h"

#include <charconv>
#include <fstream>
#include <sstream>
#include <utility>

#include "src/base/check.h"

namespace cairn::checker {

std::string_view OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kPut:
      return "put";
    case OpKind::kGet:
      return "get";
    case OpKind::kDelete:
      return "delete";
    case OpKind::kCas:
      return "cas";
  }
  return "?";
}

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kIndeterminate:
      return "indeterminate";
    case Outcome::kDefinitelyFailed:
      return "failed";
  }
  return "?";
}

bool Operation::IsSuccessfulWrite() const {
  if (!definite()) return false;
  switch (kind) {
    case OpKind::kPut:
      return true;
    case OpKind::kDelete:
      return result.deleted_count == 1;
    case OpKind::kCas:
      return result.succeeded;
    case OpKind::kGet:
      return false;
  }
  return false;
}

namespace {

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte > 0x7e) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string ReadResultString(const OpResult& r) {
  if (!r.found) return "not found @" + std::to_string(r.header_revision);
  return Quote(r.read_value) + " mod " + std::to_string(r.read_mod_revision) + " @" +
         std::to_string(r.header_revision);
}

std::string ResponseString(const Operation& op) {
  const OpResult& r = op.result;
  if (r.outcome != Outcome::kOk) return std::string(OutcomeName(r.outcome));
  switch (op.kind) {
    case OpKind::kPut:
      return "rev " + std::to_string(r.header_revision);
    case OpKind::kGet:
      return ReadResultString(r);
    case OpKind::kDelete:
      return "deleted " + std::to_string(r.deleted_count) + " @" +
             std::to_string(r.header_revision);
    case OpKind::kCas:
      if (r.succeeded) return "succeeded rev " + std::to_string(r.header_revision);
      return "failed, read " + ReadResultString(r);
  }
  return "?";
}

}  // namespace

std::string Operation::ToString() const {
  std::string s = "c" + std::to_string(client_id) + " ";
  switch (kind) {
    case OpKind::kPut:
      s += "Put(" + Quote(key) + ", " + Quote(value) + ")";
      break;
    case OpKind::kGet:
      s += "Get(" + Quote(key) + ")";
      break;
    case OpKind::kDelete:
      s += "Delete(" + Quote(key) + ")";
      break;
    case OpKind::kCas:
      s += "Cas(" + Quote(key) + ", mod==" + std::to_string(expected_mod_revision) + ", " +
           Quote(value) + ")";
      break;
  }
  s += " -> " + ResponseString(*this) + " [" + std::to_string(call_time_ns) + ", ";
  s += return_time_ns == kNeverNs ? std::string("inf") : std::to_string(return_time_ns);
  return s + "]";
}

Operation PutOp(uint32_t client, std::string key, std::string value, int64_t call_ns,
                int64_t return_ns, int64_t revision) {
  return Operation{.client_id = client,
                   .kind = OpKind::kPut,
                   .key = std::move(key),
                   .value = std::move(value),
                   .call_time_ns = call_ns,
                   .return_time_ns = return_ns,
                   .result = OpResult::PutOk(revision)};
}

Operation GetOp(uint32_t client, std::string key, int64_t call_ns, int64_t return_ns,
                OpResult result) {
  return Operation{.client_id = client,
                   .kind = OpKind::kGet,
                   .key = std::move(key),
                   .call_time_ns = call_ns,
                   .return_time_ns = return_ns,
                   .result = std::move(result)};
}

Operation DeleteOp(uint32_t client, std::string key, int64_t call_ns, int64_t return_ns,
                   int64_t deleted_count, int64_t header_revision) {
  return Operation{.client_id = client,
                   .kind = OpKind::kDelete,
                   .key = std::move(key),
                   .call_time_ns = call_ns,
                   .return_time_ns = return_ns,
                   .result = OpResult::DeleteOk(deleted_count, header_revision)};
}

Operation CasOp(uint32_t client, std::string key, int64_t expected_mod_revision, std::string value,
                int64_t call_ns, int64_t return_ns, OpResult result) {
  return Operation{.client_id = client,
                   .kind = OpKind::kCas,
                   .key = std::move(key),
                   .value = std::move(value),
                   .expected_mod_revision = expected_mod_revision,
                   .call_time_ns = call_ns,
                   .return_time_ns = return_ns,
                   .result = std::move(result)};
}

Operation Indeterminate(Operation op) {
  op.result = OpResult::Indeterminate();
  op.return_time_ns = kNeverNs;
  return op;
}

namespace {

std::string Invalid(size_t index, const Operation& op, std::string_view why) {
  return "operation " + std::to_string(index) + " (" + op.ToString() + "): " + std::string(why);
}

// Empty when the operation is well formed, else the reason.
std::string_view Malformed(const Operation& op) {
  const OpResult& r = op.result;
  if (r.outcome != Outcome::kOk) {
    if (op.return_time_ns != kNeverNs) return "a response time on an operation without response";
    return {};
  }
  if (op.return_time_ns == kNeverNs) return "outcome ok without a return time";
  if (op.return_time_ns < op.call_time_ns) return "returned before it was called";
  if (r.header_revision <= 0) return "header revision must be > 0";
  if (op.kind == OpKind::kDelete && r.deleted_count != 0 && r.deleted_count != 1) {
    return "deleted count must be 0 or 1";
  }
  if (op.kind == OpKind::kCas && op.expected_mod_revision < 0) {
    return "expected mod_revision must be >= 0";
  }
  bool reads = op.kind == OpKind::kGet || (op.kind == OpKind::kCas && !r.succeeded);
  if (reads && r.found && (r.read_mod_revision <= 0 || r.read_mod_revision > r.header_revision)) {
    return "a found read needs 0 < mod_revision <= header revision";
  }
  return {};
}

}  // namespace

Status History::Validate() const {
  for (size_t i = 0; i < ops_.size(); ++i) {
    std::string_view why = Malformed(ops_[i]);
    if (!why.empty()) return Status::InvalidArgument(Invalid(i, ops_[i], why));
  }
  return Status::Ok();
}

// ---- Text format ----

namespace {

constexpr std::string_view kHeaderLine = "# cairn-history v1";
constexpr size_t kFieldCount = 14;

std::string Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (byte < 0x20 || byte > 0x7e) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\x";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (++i == s.size()) return Status::InvalidArgument("dangling backslash");
    switch (s[i]) {
      case '\\':
        out += '\\';
        break;
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 'x': {
        if (i + 2 >= s.size()) {
          return Status::InvalidArgument("short \\x escape");
        }
        int high = HexDigit(s[i + 1]);
        int low = HexDigit(s[i + 2]);
        if (high < 0 || low < 0) return Status::InvalidArgument("bad \\x escape");
        out += static_cast<char>(high * 16 + low);
        i += 2;
        break;
      }
      default:
        return Status::InvalidArgument("unknown escape");
    }
  }
  return out;
}

Result<int64_t> ParseInt(std::string_view s) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (error != std::errc() || end != s.data() + s.size()) {
    return Status::InvalidArgument("bad integer '" + std::string(s) + "'");
  }
  return value;
}

Result<OpKind> ParseKind(std::string_view s) {
  for (OpKind kind : {OpKind::kPut, OpKind::kGet, OpKind::kDelete, OpKind::kCas}) {
    if (s == OpKindName(kind)) return kind;
  }
  return Status::InvalidArgument("bad kind '" + std::string(s) + "'");
}

Result<Outcome> ParseOutcome(std::string_view s) {
  for (Outcome o : {Outcome::kOk, Outcome::kIndeterminate, Outcome::kDefinitelyFailed}) {
    if (s == OutcomeName(o)) return o;
  }
  return Status::InvalidArgument("bad outcome '" + std::string(s) + "'");
}

Result<bool> ParseBool(std::string_view s) {
  if (s == "0") return false;
  if (s == "1") return true;
  return Status::InvalidArgument("bad boolean '" + std::string(s) + "'");
}

std::vector<std::string_view> SplitTabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

Result<Operation> ParseLine(std::string_view line) {
  std::vector<std::string_view> f = SplitTabs(line);
  if (f.size() != kFieldCount) {
    return Status::InvalidArgument("expected " + std::to_string(kFieldCount) + " fields, got " +
                                   std::to_string(f.size()));
  }
  Operation op;
  CAIRN_ASSIGN_OR_RETURN(int64_t client, ParseInt(f[0]));
  if (client < 0 || client > std::numeric_limits<uint32_t>::max()) {
    return Status::InvalidArgument("bad client id");
  }
  op.client_id = static_cast<uint32_t>(client);
  CAIRN_ASSIGN_OR_RETURN(op.kind, ParseKind(f[1]));
  CAIRN_ASSIGN_OR_RETURN(op.key, Unescape(f[2]));
  CAIRN_ASSIGN_OR_RETURN(op.value, Unescape(f[3]));
  CAIRN_ASSIGN_OR_RETURN(op.expected_mod_revision, ParseInt(f[4]));
  CAIRN_ASSIGN_OR_RETURN(op.call_time_ns, ParseInt(f[5]));
  if (f[6] == "-") {
    op.return_time_ns = kNeverNs;
  } else {
    CAIRN_ASSIGN_OR_RETURN(op.return_time_ns, ParseInt(f[6]));
  }
  OpResult& r = op.result;
  CAIRN_ASSIGN_OR_RETURN(r.outcome, ParseOutcome(f[7]));
  CAIRN_ASSIGN_OR_RETURN(r.header_revision, ParseInt(f[8]));
  CAIRN_ASSIGN_OR_RETURN(r.found, ParseBool(f[9]));
  CAIRN_ASSIGN_OR_RETURN(r.read_value, Unescape(f[10]));
  CAIRN_ASSIGN_OR_RETURN(r.read_mod_revision, ParseInt(f[11]));
  CAIRN_ASSIGN_OR_RETURN(r.deleted_count, ParseInt(f[12]));
  CAIRN_ASSIGN_OR_RETURN(r.succeeded, ParseBool(f[13]));
  return op;
}

}  // namespace

std::string SerializeHistory(const History& history) {
  std::string out = std::string(kHeaderLine) + "\n";
  for (const Operation& op : history.ops()) {
    const OpResult& r = op.result;
    std::string ret = op.return_time_ns == kNeverNs ? "-" : std::to_string(op.return_time_ns);
    out += std::to_string(op.client_id) + "\t" + std::string(OpKindName(op.kind)) + "\t" +
           Escape(op.key) + "\t" + Escape(op.value) + "\t" +
           std::to_string(op.expected_mod_revision) + "\t" + std::to_string(op.call_time_ns) +
           "\t" + ret + "\t" + std::string(OutcomeName(r.outcome)) + "\t" +
           std::to_string(r.header_revision) + "\t" + (r.found ? "1" : "0") + "\t" +
           Escape(r.read_value) + "\t" + std::to_string(r.read_mod_revision) + "\t" +
           std::to_string(r.deleted_count) + "\t" + (r.succeeded ? "1" : "0") + "\n";
  }
  return out;
}

Result<History> ParseHistory(std::string_view text) {
  History history;
  size_t line_number = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    Result<Operation> op = ParseLine(line);
    if (!op.ok()) return op.status().WithContext("line " + std::to_string(line_number));
    history.Append(std::move(op).value());
  }
  return history;
}

Status WriteHistoryFile(const History& history, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::IoError("cannot open " + path + " for writing");
  out << SerializeHistory(history);
  out.flush();
  if (!out) return Status::IoError("cannot write " + path);
  return Status::Ok();
}

Result<History> ReadHistoryFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Status::IoError("cannot read " + path);
  Result<History> history = ParseHistory(buffer.str());
  if (!history.ok()) return history.status().WithContext(path);
  return history;
}

// ---- Recorder ----

Recorder::Recorder(std::function<int64_t()> now_ns) : now_ns_(std::move(now_ns)) {
  CAIRN_CHECK(now_ns_ != nullptr);
}

Recorder::Handle Recorder::Invoke(uint32_t client_id, OpKind kind, std::string key,
                                  std::string value, int64_t expected_mod_revision) {
  Operation op{.client_id = client_id,
               .kind = kind,
               .key = std::move(key),
               .value = std::move(value),
               .expected_mod_revision = expected_mod_revision};
  std::lock_guard<std::mutex> lock(mutex_);
  // The call time is read under the lock so that handles are in call-time order.
  op.call_time_ns = now_ns_();
  ops_.push_back(std::move(op));
  completed_.push_back(false);
  return ops_.size() - 1;
}

void Recorder::Complete(Handle handle, OpResult result) {
  std::lock_guard<std::mutex> lock(mutex_);
  CAIRN_CHECK(handle < ops_.size());
  CAIRN_CHECK_MSG(!completed_[handle], "operation completed twice");
  completed_[handle] = true;
  Operation& op = ops_[handle];
  op.return_time_ns = result.outcome == Outcome::kOk ? now_ns_() : kNeverNs;
  op.result = std::move(result);
}

History Recorder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  History history;
  for (const Operation& op : ops_) history.Append(op);
  return history;
}

}  // namespace cairn::checker
