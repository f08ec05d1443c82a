// The example trainers' simic::recovery guard (--recover, docs/trainer.md):
// its options from the command line's, and its rollback reports as the
// summary keeps them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "recovery_options.hpp"
#include "simic/recovery.hpp"
#include "summary.hpp"

namespace examples_common {

static_assert(default_recover_every == simic::defaults::snapshot_every);
static_assert(default_recover_keep == simic::defaults::snapshots_kept);
static_assert(recover_skips == simic::defaults::skips_before_rollback);

// The guard's options: simic's defaults but for the snapshot interval, the
// snapshots kept, their directory and the replay (null: none). A directory
// that cannot be made is "--recover-dir: ..." (a usage error).
inline simic::recovery_options guard_options(const recovery_settings& r, std::function<simic::signals()> replay) {
  simic::recovery_options o;
  o.snapshot_every = r.every;
  o.keep = r.keep;
  if (!r.dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(r.dir, ec);
    if (!std::filesystem::is_directory(r.dir))
      throw std::invalid_argument("--recover-dir: cannot create the directory '" + r.dir + "'" +
                                  (ec ? ": " + ec.message() : std::string()));
    o.directory = r.dir;
  }
  o.replay = std::move(replay);
  return o;
}

// A rollback at step/update `at`, as the summary keeps it.
inline rollback_record record_of(std::uint64_t at, const simic::rollback_report& r) {
  return {.at = at,
          .cause = std::string(simic::to_string(r.cause)),
          .reason = r.reason,
          .restored_update = r.restored_update,
          .window_first = r.window_first,
          .window_last = r.window_last,
          .lr_scale = r.lr_scale,
          .attribution = std::string(simic::to_string(r.attribution))};
}

// The summary's fields of a rollback record, for state_writer/state_reader.
template <class V>
void rollback_fields(V& v, rollback_record& r) {
  v("at", r.at);
  v("cause", r.cause);
  v("reason", r.reason);
  v("restored_update", r.restored_update);
  v("window_first", r.window_first);
  v("window_last", r.window_last);
  v("lr_scale", r.lr_scale);
  v("attribution", r.attribution);
}

// The guard at the end of a run, into the summary (nothing without --recover).
template <class Guard>
void note_guard(recovery_summary& sum, const std::optional<Guard>& guard) {
  if (!guard) return;
  sum.lr_scale = guard->lr_scale();
  sum.snapshots_held = guard->snapshots();
  sum.snapshot_file_failures = guard->file_failures();
  sum.snapshot_seconds = guard->snapshot_seconds();
}

}  // namespace examples_common
