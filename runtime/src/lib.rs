//! Ember's desktop runtime: ONNX digit classifiers through tract — preprocessing of arbitrary
//! pictures, classification, evaluation on MNIST and benchmarks.

pub mod answers;
pub mod bench;
pub mod classifier;
pub mod contain;
pub mod convention;
pub mod device;
pub mod embedded;
pub mod eval;
pub mod inspect;
pub mod max_pool;
pub mod preprocess;
pub mod quantize;
pub mod serve;
pub mod soak;
pub mod validate;
pub mod write;
