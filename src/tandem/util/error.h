// Typed errors. Library code throws; only main() turns them into exit codes, so a
// user always sees one line naming the file, line, key or rank at fault.
#pragma once

#include <stdexcept>
#include <string>

namespace tandem {

/// Base of every error Tandem throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// Process exit status main() uses for this kind of error.
  virtual int exit_code() const { return 1; }
};

/// Bad configuration or command line: unknown key, bad value, missing file.
class ConfigError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 2; }
};

/// Bad or unreadable input data.
class DataError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

/// A file Tandem writes could not be written (a full disk, permissions); the
/// message carries the operating system's reason.
class IoError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

/// Training diverged: a loss or gradient that is not finite (train.on_nonfinite).
class NumericError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 3; }
};

/// A communication failure or a collective that ranks issued inconsistently.
class CommError : public Error {
 public:
  using Error::Error;
  int exit_code() const override { return 4; }
};

}  // namespace tandem

namespace tandem {

/// Thrown on the ranks that did nothing wrong when another rank failed a step that
/// all ranks do together (see comm::agree). It carries that rank's exit code; main
/// prints nothing for it, since the failing rank already said what went wrong.
class PeerError : public Error {
 public:
  PeerError(const std::string& what, int code) : Error(what), code_(code) {}
  int exit_code() const override { return code_; }

 private:
  int code_;
};

}  // namespace tandem
