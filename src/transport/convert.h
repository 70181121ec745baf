// Conversion between the Raft core's value types (src/raft/types.h) and their wire form
// (proto/cairn/raft.proto, package cairn.raft.v1).
//
// Encoding is total: every raft::Message has a wire form. Decoding checks what a peer could
// get wrong — unknown message or entry types, a malformed membership configuration — and
// returns InvalidArgument instead of a value the core would CAIRN_CHECK on. It does not check
// the Raft-level shape of a message (sender set, entries contiguous...): RawNode::Step does
// that (raft::ValidatePeerMessage).
//
// Thread-safety: pure functions.
#pragma once

#include "cairn/raft.pb.h"
#include "src/base/result.h"
#include "src/raft/types.h"

namespace cairn::transport {

// Fills *proto (cleared first) from `message`; entry, snapshot and context bytes are moved.
void MessageToProto(raft::Message message, raft::v1::Message* proto);

// Decodes a message received from a peer; entry, snapshot and context bytes are moved out of
// *proto. InvalidArgument for unknown enum values or a malformed snapshot configuration.
Result<raft::Message> MessageFromProto(raft::v1::Message* proto);

}  // namespace cairn::transport
