// JSON as etcdctl prints it: Go's encoding/json applied to etcd's gogo-protobuf structs.
//
// The rules (checked against etcdctl 3.4's output):
//   - fields in .proto declaration order, named by the proto field name (the Go json tag);
//   - zero values are omitted (omitempty): 0, false, "", empty bytes, empty repeated, unset
//     messages; a set message prints even when it is empty;
//   - int64/uint64 are plain JSON numbers, enums are numbers, bytes are standard base64;
//   - a oneof prints as {"<OneofCamel>": {"<FieldCamel>": value}} (Go's interface field);
//   - strings escape <, > and & as \u003c, \u003e, \u0026 like Go's HTML-safe encoder;
//   - fields that etcd 3.4's protos do not have (3.5/3.6 additions) are left out, since
//     etcdctl 3.4 drops them as unknown fields.
#pragma once

#include <google/protobuf/message.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace cairnctl {

std::string JsonString(std::string_view text);
std::string JsonBase64(std::string_view bytes);

// Builds one JSON object; values are already-encoded JSON text.
class JsonObject {
 public:
  void Add(std::string_view name, std::string_view json_value);
  // Adds every non-omitted field of `message` (an embedded Go struct pointer flattens the
  // same way: clientv3's LeaseGrantResponse embeds *ResponseHeader).
  void AddMessageFields(const google::protobuf::Message& message);
  std::string Finish() const { return text_ + "}"; }

 private:
  std::string text_ = "{";
  bool empty_ = true;
};

// The whole message as an object.
std::string ProtoToGoJson(const google::protobuf::Message& message);

}  // namespace cairnctl
