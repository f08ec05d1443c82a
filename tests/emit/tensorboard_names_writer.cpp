// Writes one hub's JSONL and TensorBoard files of events whose names are
// hostile: invalid UTF-8 in metric and phase names, repeated metric names.
// tests/examples/tensorboard_readback_test.py --writer runs it and reads the
// TensorBoard file back with TensorBoard itself, against the JSONL file.
//   tensorboard_names_writer DIR  ->  DIR/events.jsonl, DIR/tb/events.out.tfevents.*
#include <cstdio>
#include <filesystem>
#include <memory>

#include "simic/emit/events.hpp"
#include "simic/emit/hub.hpp"
#include "simic/emit/sink_jsonl.hpp"
#include "simic/emit/sink_tensorboard.hpp"
#include "simic/profile/phase_timer.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  using namespace simic;
  const std::filesystem::path dir = argv[1];
  hub h;
  h.add_sink(std::make_shared<jsonl_sink>(dir / "events.jsonl"));
  h.add_sink(std::make_shared<tensorboard_sink>(dir / "tb"));
  update_metrics u;
  u.loss = 0.5;
  u.extra = {{"layer\xe9.weight", 1.0}, {"ok", 2.0}, {"\xc0\x80", 3.0}, {"ok", 4.0}, {"\xed\xa0\x80", 5.0},
             {"ok#2", 6.0}, {"lat\xff", 7.0}, {"lat\xfe", 8.0}};
  h.emit(event(1, 0, u));
  phase_timings_event p;
  p.phases = {{"roll\xff", 2, 1.0, 0.25, 0.75}, {"roll\xfe", 1, 3.0, 3.0, 3.0}, {"update", 1, 0.5, 0.5, 0.5}};
  h.emit(event(2, 0, p));
  epoch_summary s;
  s.updates = 2;
  s.metrics = {{"acc", 0.9}, {"acc", 0.8}, {"\xf4\x90\x80\x80", 1.5}};
  h.emit(event(2, 1, s));
  update_metrics after;  // records after the hostile ones must still be read
  after.loss = 0.25;
  h.emit(event(3, 1, after));
  const hub_counts c = h.close(hub::no_deadline);
  return c.lost() == 0 ? 0 : 1;
}
