// A Boost.Test check for library errors: included after <boost/test/unit_test.hpp> by the
// tests that exercise bad input (a header, because Boost.Test's macros cannot come from a
// module).
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <vector>

/// Runs f, which must throw E with a message containing every one of `parts`.
template <class E>
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    BOOST_ERROR("no exception; expected one mentioning " << parts.front());
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) BOOST_TEST(msg.find(p) != std::string::npos, "'" << p << "' in: " << msg);
  } catch (const std::exception& e) {
    BOOST_ERROR("wrong exception type: " << e.what());
  }
}
