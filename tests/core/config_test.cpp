#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "simic/core/config.hpp"

using namespace simic;

TEST_CASE("defaults: NORMAL, escalation 5 epochs on critical anomalies") {
  config c;
  CHECK(c.configured_level() == level::normal);
  CHECK(c.effective_level() == level::normal);
  CHECK(c.options().escalation_epochs == 5);
  CHECK(c.options().escalation_epochs == defaults::escalation_epochs);
  CHECK(c.options().auto_escalate);
  CHECK(c.options().escalate_on == severity::critical);
}

TEST_CASE("should_collect follows the effective level") {
  config c;
  CHECK(c.should_collect<cat::critical>());
  CHECK(c.should_collect<cat::ops_normal>());
  CHECK_FALSE(c.should_collect<cat::debug>());
  c.set_level(level::minimal);
  CHECK(c.should_collect<cat::critical>());
  CHECK_FALSE(c.should_collect<cat::ops_normal>());
  CHECK_FALSE(c.should_collect(category_id::memory));
  c.set_level(level::off);
  CHECK_FALSE(c.should_collect<cat::critical>());
  CHECK_FALSE(c.should_collect(category_id::critical));
  c.set_level(level::debug);
  CHECK(c.should_collect<cat::debug>());
  CHECK(c.should_collect(category_id::memory));
}

TEST_CASE("escalation: DEBUG for N epochs, counted by tick, then back") {
  config_options o;
  o.escalation_epochs = 3;
  config c(o);
  CHECK(c.escalate());  // started
  CHECK(c.effective_level() == level::debug);
  CHECK(c.escalated());
  CHECK(c.should_collect<cat::debug>());
  CHECK_FALSE(c.tick());  // 2 left
  CHECK_FALSE(c.tick());  // 1 left
  CHECK(c.escalation_epochs_left() == 1);
  CHECK(c.effective_level() == level::debug);
  CHECK(c.tick());        // expired now
  CHECK(c.effective_level() == level::normal);
  CHECK_FALSE(c.tick());  // nothing left to end
}

TEST_CASE("a new anomaly during an escalation restarts the window without a second start") {
  config_options o;
  o.escalation_epochs = 2;
  config c(o);
  CHECK(c.escalate());
  CHECK_FALSE(c.tick());
  CHECK_FALSE(c.escalate());  // already escalated: no new start, window reset to 2
  CHECK(c.escalation_epochs_left() == 2);
  CHECK_FALSE(c.tick());
  CHECK(c.tick());
}

TEST_CASE("no escalation when switched off, at zero epochs, at OFF; at DEBUG it is invisible") {
  config_options o;
  o.auto_escalate = false;
  CHECK_FALSE(config(o).escalate());
  o.auto_escalate = true;
  o.escalation_epochs = 0;
  CHECK_FALSE(config(o).escalate());
  o.escalation_epochs = 5;
  o.configured = level::off;
  config off(o);
  CHECK_FALSE(off.escalate());
  CHECK(off.effective_level() == level::off);
  o.configured = level::debug;
  config dbg(o);
  CHECK_FALSE(dbg.escalate());  // the level does not move
  CHECK(dbg.effective_level() == level::debug);
}

TEST_CASE("bad options are rejected naming the argument and range") {
  config_options o;
  o.configured = static_cast<level>(7);
  try {
    config c(o);
    FAIL("accepted level 7");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("configured") != std::string::npos);
    CHECK(std::string(e.what()).find("OFF, MINIMAL, NORMAL or DEBUG") != std::string::npos);
  }
  o.configured = level::debug;
  o.escalate_on = static_cast<severity>(2);
  CHECK_THROWS_WITH_AS(config{o}, doctest::Contains("escalate_on"), std::invalid_argument);
}

TEST_CASE("escalation state loads exactly, and a bad one changes nothing") {
  config c;
  c.escalate();
  c.tick();
  config d;
  d.load_escalation_state(c.escalation_state());
  CHECK(d.escalation_epochs_left() == 4);
  CHECK(d.effective_level() == level::debug);
  CHECK_THROWS_WITH_AS(d.load_escalation_state(6), doctest::Contains("left"), std::invalid_argument);
  CHECK(d.escalation_epochs_left() == 4);
}

TEST_CASE("escalation ends after escalation_checks checks or escalation_epochs epochs, whichever is first") {
  config_options o;
  o.escalation_epochs = 2;
  o.escalation_checks = 3;
  config c(o);
  CHECK_FALSE(c.count_check());  // no escalation: nothing counted
  CHECK(c.escalate());
  CHECK(c.escalation_checks_left() == 3);
  CHECK_FALSE(c.count_check());  // checks 1 and 2 of 3 at DEBUG
  CHECK_FALSE(c.count_check());
  CHECK(c.effective_level() == level::debug);
  CHECK(c.count_check());  // the 3rd ends it, though epochs are left
  CHECK(c.effective_level() == level::normal);
  CHECK(c.escalation_epochs_left() == 0);
  CHECK_FALSE(c.count_check());
  // epochs first: two ticks end it with checks left, and the checks left go with it
  CHECK(c.escalate());
  CHECK_FALSE(c.count_check());
  CHECK_FALSE(c.tick());
  CHECK(c.tick());
  CHECK(c.escalation_checks_left() == 0);
  // a renewal restarts both counts
  c.escalate();
  c.count_check();
  c.count_check();
  c.escalate();
  CHECK(c.escalation_checks_left() == 3);
  CHECK(c.escalation_epochs_left() == 2);
  // escalation_checks 0: no check limit, epochs only
  o.escalation_checks = 0;
  config e(o);
  e.escalate();
  for (int i = 0; i < 1000; ++i) CHECK_FALSE(e.count_check());
  CHECK(e.effective_level() == level::debug);
  // state: both or neither, validated against the options
  config d(config_options{.escalation_epochs = 2, .escalation_checks = 3});
  CHECK_THROWS_WITH_AS(d.load_escalation_state(1, 4), doctest::Contains("checks_left"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(d.load_escalation_state(0, 2), doctest::Contains("0 when no epoch is left"),
                       std::invalid_argument);
  CHECK(d.escalation_epochs_left() == 0);
  d.load_escalation_state(1, 3);
  CHECK(d.escalation_checks_left() == 3);
  CHECK(d.effective_level() == level::debug);
}

TEST_CASE("severity options: escalate_on and the severity table, validated; set_level refuses a bad level") {
  config c;
  CHECK(c.options().escalate_on == severity::critical);
  CHECK(c.escalates(severity::critical));
  CHECK_FALSE(c.escalates(severity::warning));
  config_options o;
  o.escalate_on = severity::warning;
  o.severities.set(anomaly_kind::kl_spike, severity::critical);
  config w(o);
  CHECK(w.escalates(severity::warning));
  CHECK(w.severity_of(anomaly_kind::kl_spike) == severity::critical);
  CHECK(w.severity_of(anomaly_kind::kl_extreme) == severity::critical);
  CHECK(w.severity_of(anomaly_kind::entropy_low) == severity::warning);
  o.escalate_on = static_cast<severity>(2);
  CHECK_THROWS_WITH_AS(config{o}, doctest::Contains("escalate_on"), std::invalid_argument);
  // level(9) would index past the level names: refused, and the level is kept
  CHECK_THROWS_WITH_AS(c.set_level(static_cast<level>(9)), doctest::Contains("OFF, MINIMAL, NORMAL or DEBUG"),
                       std::invalid_argument);
  CHECK(c.configured_level() == level::normal);
  c.set_level(level::debug);  // at the top of the range: accepted
  CHECK(c.configured_level() == level::debug);
}
