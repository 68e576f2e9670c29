//! pprof profiles on the wire: checking that bytes are a profile, reading the
//! facts ferro labels it with, and naming its type.
//!
//! Format: `perftools.profiles.Profile` (<https://github.com/google/pprof/blob/main/proto/profile.proto>),
//! gzip-compressed as Go's `net/http/pprof` serves it, or plain. The checks
//! are those a Pyroscope distributor makes before it stores a profile
//! (`pkg/validation/validate.go`: non-zero location and function ids, sample
//! types without `-`) plus the structural ones its parser relies on (string
//! table indices in range, one value per sample type per sample), so a
//! profile that ferro passes on is one Pyroscope can take. They are made by
//! a walk over the encoded profile ([`scan`]) that refuses what prost's
//! decoder would refuse, without decoding it into structs.

mod profile;
pub mod sample;
mod scan;

pub use profile::*;
#[allow(unused_imports)]
use profile::*;

#[cfg(test)]
mod tests;
