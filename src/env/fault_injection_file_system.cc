#include "src/env/fault_injection_file_system.h"

namespace cairn::env {

void FaultInjectionFileSystem::Halt() {
  std::lock_guard<std::mutex> lock(mutex_);
  halted_ = true;
}

void FaultInjectionFileSystem::SimulateCrash() {
  std::lock_guard<std::mutex> lock(mutex_);
  halted_ = false;
  ++crash_count_;
  CrashLocked(nullptr);
}

void FaultInjectionFileSystem::SimulateCrashWithTornWrite(Random& random) {
  std::lock_guard<std::mutex> lock(mutex_);
  halted_ = false;
  ++crash_count_;
  CrashLocked(&random);
}

void FaultInjectionFileSystem::FailNth(FileOperation operation, uint64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t i = static_cast<size_t>(operation);
  fail_at_count_[i] = n == 0 ? 0 : counts_[i] + n;
}

void FaultInjectionFileSystem::FailAlways(FileOperation operation) {
  std::lock_guard<std::mutex> lock(mutex_);
  fail_always_[static_cast<size_t>(operation)] = true;
}

void FaultInjectionFileSystem::SetHook(Hook hook) {
  std::lock_guard<std::mutex> lock(mutex_);
  hook_ = std::move(hook);
}

void FaultInjectionFileSystem::ClearFaults() {
  std::lock_guard<std::mutex> lock(mutex_);
  fail_at_count_.fill(0);
  fail_always_.fill(false);
  hook_ = nullptr;
}

uint64_t FaultInjectionFileSystem::OperationCount(FileOperation operation) {
  std::lock_guard<std::mutex> lock(mutex_);
  return counts_[static_cast<size_t>(operation)];
}

uint64_t FaultInjectionFileSystem::CrashCount() {
  std::lock_guard<std::mutex> lock(mutex_);
  return crash_count_;
}

Status FaultInjectionFileSystem::BeforeOperation(FileOperation operation, const std::string& path) {
  const size_t i = static_cast<size_t>(operation);
  const uint64_t count = ++counts_[i];
  if (halted_) return Status::IoError("file system halted (simulated power loss): " + path);
  if (hook_) CAIRN_RETURN_IF_ERROR(hook_(operation, path));
  if (fail_always_[i] || fail_at_count_[i] == count) {
    if (fail_at_count_[i] == count) fail_at_count_[i] = 0;
    std::string message("injected fault: ");
    message += FileOperationName(operation);
    message += " ";
    message += path;
    return Status::IoError(message);
  }
  return Status::Ok();
}

}  // namespace cairn::env
