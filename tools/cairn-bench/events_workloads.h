// cairn-bench's event-store workloads over Cairn's cairn.events.v1.Events service (not an
// etcd API: these run against cairnd only):
//   events-append             Append of --batch events to one of --streams streams
//   events-read               ReadStream pages over streams written in a setup phase
//   events-subscribe-latency  Subscribe($all, from end) streams, then appends at --rate;
//                             latency from the append's send to the event's receipt
// They run on the engine of bench.h (actors on the pollers' completion queues) and report
// through Report like the etcd workloads, with events/s and appends/s in Report::extra.
#pragma once

#include <string>

#include "tools/cairn-bench/workloads.h"

namespace cairn::bench {

bool IsEventsWorkload(const std::string& name);

// REQUIRES: IsEventsWorkload(name); run is connected and its pollers are started.
bool RunEventsWorkload(const std::string& name, Run& run, const WorkloadOptions& workload,
                       Report* report, std::string* error);

// Adds events/s and appends/s (or reads/s) to report->extra. REQUIRES: report->stats merged.
void FinishEventsReport(const std::string& name, const WorkloadOptions& workload, Report* report);

}  // namespace cairn::bench
