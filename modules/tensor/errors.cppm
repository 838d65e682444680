// The exceptions odyssey throws. Every message says what is wrong and, where a file is
// involved, which file and where in it, so that a user can act on it.
module;
#include <stdexcept>
#include <string>
export module odyssey.tensor:errors;

export namespace odyssey {

/// Base of every odyssey error.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A run-time extent (the batch, or a tensor read from a file) does not match.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// Checked element access outside a tensor's extents.
class IndexError : public Error {
 public:
  using Error::Error;
};

/// A file or directory cannot be opened, read or written.
class IoError : public Error {
 public:
  using Error::Error;
};

/// A file's contents are not what its format requires.
class FormatError : public Error {
 public:
  using Error::Error;
};

/// An argument or a computed value is out of its valid range (e.g. a NaN loss).
class ValueError : public Error {
 public:
  using Error::Error;
};

}  // namespace odyssey
