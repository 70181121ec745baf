#include "tools/cairnctl/go_json.h"

#include <cstdio>
#include <set>

namespace cairnctl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Fields of Cairn's protos that etcd 3.4 does not define: etcdctl 3.4 never prints them.
bool IsNewerThanEtcd34(const FieldDescriptor* field) {
  static const std::set<std::string> kNewer = {
      "etcdserverpb.StatusResponse.storageVersion",
      "etcdserverpb.StatusResponse.dbSizeQuota",
      "etcdserverpb.SnapshotResponse.version",
      "etcdserverpb.HashKVResponse.hash_revision",
  };
  return kNewer.count(field->full_name()) > 0;
}

// Go's generator.CamelCase for Go struct field names: "response_put" -> "ResponsePut".
std::string GoCamelCase(std::string_view name) {
  std::string out;
  bool upper_next = true;
  for (char c : name) {
    if (c == '_') {
      upper_next = true;
      continue;
    }
    out.push_back(upper_next && c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
    upper_next = false;
  }
  return out;
}

std::string ScalarJson(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* reflection = message.GetReflection();
  bool repeated = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return std::to_string(repeated ? reflection->GetRepeatedInt32(message, field, index)
                                     : reflection->GetInt32(message, field));
    case FieldDescriptor::CPPTYPE_INT64:
      return std::to_string(repeated ? reflection->GetRepeatedInt64(message, field, index)
                                     : reflection->GetInt64(message, field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return std::to_string(repeated ? reflection->GetRepeatedUInt32(message, field, index)
                                     : reflection->GetUInt32(message, field));
    case FieldDescriptor::CPPTYPE_UINT64:
      return std::to_string(repeated ? reflection->GetRepeatedUInt64(message, field, index)
                                     : reflection->GetUInt64(message, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (repeated ? reflection->GetRepeatedBool(message, field, index)
                       : reflection->GetBool(message, field))
                 ? "true"
                 : "false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return std::to_string(repeated ? reflection->GetRepeatedEnumValue(message, field, index)
                                     : reflection->GetEnumValue(message, field));
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string value = repeated ? reflection->GetRepeatedString(message, field, index)
                                   : reflection->GetString(message, field);
      return field->type() == FieldDescriptor::TYPE_BYTES ? JsonBase64(value) : JsonString(value);
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return ProtoToGoJson(repeated ? reflection->GetRepeatedMessage(message, field, index)
                                    : reflection->GetMessage(message, field));
    default:
      return "null";
  }
}

// Whether Go's omitempty drops this singular, non-oneof field.
bool IsZero(const Message& message, const FieldDescriptor* field) {
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    return !message.GetReflection()->HasField(message, field);
  }
  std::string value = ScalarJson(message, field, 0);
  return value == "0" || value == "false" || value == "\"\"";
}

std::string FieldJson(const Message& message, const FieldDescriptor* field) {
  if (!field->is_repeated()) return ScalarJson(message, field, 0);
  std::string out = "[";
  int size = message.GetReflection()->FieldSize(message, field);
  for (int i = 0; i < size; ++i) {
    if (i > 0) out += ",";
    out += ScalarJson(message, field, i);
  }
  return out + "]";
}

}  // namespace

std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    char escaped[8];
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
    } else if (c == 0xE2 && i + 2 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(text[i + 2]) & 0xFE) == 0xA8) {
      out += static_cast<unsigned char>(text[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

std::string JsonBase64(std::string_view bytes) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "\"";
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t group = (static_cast<unsigned char>(bytes[i]) << 16) |
                     (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                     static_cast<unsigned char>(bytes[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(kAlphabet[(group >> shift) & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t group = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) group |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(group >> 18) & 63]);
    out.push_back(kAlphabet[(group >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(group >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out + "\"";
}

void JsonObject::Add(std::string_view name, std::string_view json_value) {
  if (!empty_) text_ += ",";
  empty_ = false;
  text_ += JsonString(name);
  text_ += ":";
  text_ += json_value;
}

void JsonObject::AddMessageFields(const Message& message) {
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (IsNewerThanEtcd34(field)) continue;
    if (const auto* oneof = field->real_containing_oneof()) {
      // Go places the oneof's interface field where its first member is declared.
      if (oneof->field(0) != field) continue;
      const FieldDescriptor* set = reflection->GetOneofFieldDescriptor(message, oneof);
      if (set == nullptr) continue;
      JsonObject wrapper;
      wrapper.Add(GoCamelCase(set->name()), FieldJson(message, set));
      Add(GoCamelCase(oneof->name()), wrapper.Finish());
      continue;
    }
    if (field->is_repeated() ? reflection->FieldSize(message, field) == 0
                             : IsZero(message, field)) {
      continue;
    }
    Add(field->name(), FieldJson(message, field));
  }
}

std::string ProtoToGoJson(const Message& message) {
  JsonObject object;
  object.AddMessageFields(message);
  return object.Finish();
}

}  // namespace cairnctl
