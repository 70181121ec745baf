// ProjectionRunner: runs this member's enabled user projections in one background thread.
//
// Input is the replicated log as this member applied it: every event ever appended, in $all
// position order, read straight from the engine (streams hidden later by max_age, max_count,
// truncate or delete stay folded, so what a projection sees does not depend on when it
// read; a scavenge first has CatchUp fold what it removes). Each pass gives every projection one
// page (ProjectionLimits::kRunnerPageEvents): the page's partition states and the progress
// (checkpoint, counts, fault) are written in one engine batch ("j" records, projection_format.h). A
// restart resumes from the checkpoint the engine holds, so nothing is folded twice. A failing fold
// faults the projection: the states and checkpoint of the events before it are kept, the fault
// names the event and the error, and the projection stops until it is reset or updated. Appends
// never wait for projections and are not affected by them.
//
// The definitions ("J" records, ProjectionDefinitions) decide what runs: a new generation
// (create, update, reset) clears the projection's records and starts from the first event;
// a disabled projection pauses at its checkpoint; the records of a deleted projection are
// removed. All members fold the same events with the same code, so once caught up they hold
// the same states.
//
// Thread-safety: Start/Stop from one owner thread; RunOnce only when the thread is not
// running (tests); CatchUp from any thread (the apply thread); the Describe/ReadState
// functions from any thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cairn/projections.pb.h"
#include "src/base/result.h"
#include "src/events/event_state.h"
#include "src/events/projection/projection_definitions.h"
#include "src/events/projection/projection_engine.h"
#include "src/storage/engine.h"

namespace cairn::events::projection {

class ProjectionRunner {
 public:
  // The engine, the event state and the definitions must outlive the runner.
  ProjectionRunner(storage::Engine* engine, const EventState* events,
                   const ProjectionDefinitions* definitions, const SandboxOptions& sandbox = {});
  ~ProjectionRunner();
  ProjectionRunner(const ProjectionRunner&) = delete;
  ProjectionRunner& operator=(const ProjectionRunner&) = delete;

  void Start();
  // Returns after the current page is written. Idempotent.
  void Stop();

  // One pass: one page for every projection that has work. Returns whether anything was
  // written. Errors: storage errors (the pass is retried later).
  Result<bool> RunOnce();

  // Folds, on the caller's thread, every event of the engine that a defined projection has
  // not folded yet, disabled projections included (faulted ones stay where they faulted).
  // Called before a scavenge removes events (EventState::SetBeforeScavenge), so that what a
  // projection folds never depends on when its member scavenged: a projection defined before
  // a scavenge folds the removed events first, one defined after it never sees them.
  // Errors: storage errors.
  Status CatchUp();

 private:
  struct Compiled {
    uint64_t generation = 0;
    std::unique_ptr<ProjectionEngine> engine;
  };

  void Loop();
  // REQUIRES: run_mu_ held. `catch_up`: for CatchUp (ignores stopping_ and `enabled`).
  Result<bool> RunPass(bool catch_up);
  Result<bool> RunProjection(const v1::ProjectionDefinition& definition, bool catch_up);
  Result<bool> RemoveUndefined(const std::vector<v1::ProjectionDefinition>& definitions);
  Status Restart(const v1::ProjectionDefinition& definition);

  storage::Engine* const engine_;
  const EventState* const events_;
  const ProjectionDefinitions* const definitions_;
  const SandboxOptions sandbox_;
  std::mutex run_mu_;                         // one pass at a time (thread or CatchUp)
  std::map<std::string, Compiled> compiled_;  // guarded by run_mu_
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// Reads every event appended after `after` (nullptr: from the first), at most `count`, in
// position order, hidden or not, system streams included.
Status ReadAppended(storage::Engine* engine, const v1::Position* after, size_t count,
                    std::vector<v1::RecordedEvent>* out);

// The position of the last event of the store (absent when there is none).
Result<std::optional<v1::Position>> LastPosition(storage::Engine* engine);

// Status and progress of `definition` as this member's runner recorded them.
Result<v1::ProjectionInfo> DescribeProjection(storage::Engine* engine,
                                              const v1::ProjectionDefinition& definition);

// The state of one partition (nullopt when none) and the checkpoint it reflects, read
// together from one snapshot.
Result<std::optional<std::string>> ReadProjectionState(storage::Engine* engine,
                                                       const v1::ProjectionDefinition& definition,
                                                       std::string_view partition,
                                                       v1::GetProjectionStateResponse* out);

}  // namespace cairn::events::projection
