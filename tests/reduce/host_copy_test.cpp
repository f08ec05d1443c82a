// simic::host_copy (reduce/host_copy.hpp) and pending_report::copy_to_host()
// on the CPU: the copy holds the source's value at the time of the call,
// whatever happens to the source afterwards; it is ready at once, and no
// wait is counted. The event path is the device run's (update_guard_test's
// CUDA case).
#include "support/torch_doctest.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "simic/reduce/auto_backend.hpp"
#include "simic/reduce/backend.hpp"
#include "simic/reduce/host_copy.hpp"

using namespace simic;

TEST_CASE("host_copy: the source's value at the call, ready at once on the CPU, no wait counted") {
  const std::uint64_t waits = host_copy_waits();
  for (const auto dtype : {at::kDouble, at::kFloat, at::kBool, at::kLong}) {
    CAPTURE(dtype);
    at::Tensor src = at::arange(6, at::TensorOptions().dtype(at::kDouble)).reshape({2, 3}).to(dtype);
    const at::Tensor before = src.clone();
    const host_copy c(src);
    src.fill_(7);  // the copy keeps what src held at the call
    CHECK(c.defined());
    CHECK(c.ready());
    const at::Tensor& h = c.wait();
    CHECK(h.is_cpu());
    CHECK((h.scalar_type() == dtype));
    CHECK(h.sizes() == before.sizes());
    CHECK(std::memcmp(h.data_ptr(), before.data_ptr(), before.nbytes()) == 0);
    CHECK(h.data_ptr() != src.data_ptr());  // a copy, not a view
  }
  const host_copy empty(at::zeros({0, stat::count}, at::kDouble));  // a step without gradients
  CHECK(empty.wait().size(0) == 0);
  CHECK_FALSE(host_copy().defined());
  CHECK(host_copy_waits() == waits);
}

TEST_CASE("pending_report::copy_to_host: the same report as the plain transfer, from the copy made at the call") {
  const std::vector<at::Tensor> ts{at::tensor({3.0, -4.0, 0.0}), at::tensor({std::numeric_limits<double>::quiet_NaN(), 1.0})};
  at::Tensor rows = auto_backend{}.reduce(reduce_request{ts, stat_set::basic});
  auto sum_of_squares = [](const stats_table& t) { return t[0].sum_of_squares() + t[1].nans(); };
  pending_report<double> plain(rows, sum_of_squares);
  pending_report<double> copied(rows, sum_of_squares);
  CHECK_FALSE(copied.ready());  // not started
  copied.copy_to_host();
  CHECK(copied.ready());
  const double expect = 25.0 + 1.0;  // by hand: 3^2 + 4^2, one NaN in the second tensor
  CHECK(plain.materialize() == expect);
  rows.fill_(0);  // the rows change after the copy was started: the copy is what the step read
  CHECK(copied.materialize() == expect);
  CHECK(plain.materialize() == 0.0);  // the plain transfer reads the rows as they are now
  // a copy shared by copies of the report: started once
  pending_report<double> again = copied;
  CHECK(again.materialize() == expect);
}
