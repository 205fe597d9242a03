//! Where the MNIST files are, when the user has not said: the same search for every command.

use std::path::{Path, PathBuf};

/// The environment variable naming the folder of MNIST files.
pub const ENV: &str = "EMBER_DATA";
/// The folder searched last, relative to the working directory.
pub const DEFAULT_DIR: &str = "data/mnist";
/// The four files, gzipped as they are distributed.
pub const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];
/// A mirror that serves them (PyTorch's; the original site is often unreachable).
pub const MIRROR: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";

/// No folder searched holds MNIST.
#[derive(Debug, thiserror::Error)]
#[error(
    "no MNIST files in {looked}; put the four files ({}, {}, {}, {}, e.g. from {MIRROR}) in one folder and pass --data DIR or set {ENV}=DIR",
    FILES[0], FILES[1], FILES[2], FILES[3]
)]
pub struct NotFound {
    /// The places searched, as the message shows them.
    pub looked: String,
}

/// The MNIST folder: `flag` (`--data`) if given, else `$EMBER_DATA`, else `./data/mnist`. A
/// folder counts when it holds either split's images, gzipped or raw; `load` then names any
/// other missing file.
pub fn data_dir(flag: Option<&Path>) -> Result<PathBuf, NotFound> {
    let env = std::env::var_os(ENV).filter(|v| !v.is_empty());
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    match flag {
        Some(dir) => candidates.push((format!("--data {}", dir.display()), dir.to_path_buf())),
        None => {
            if let Some(dir) = env {
                let dir = PathBuf::from(dir);
                candidates.push((format!("${ENV} ({})", dir.display()), dir));
            }
            candidates.push((format!("./{DEFAULT_DIR}"), PathBuf::from(DEFAULT_DIR)));
        }
    }
    if let Some((_, dir)) = candidates.iter().find(|(_, dir)| holds_mnist(dir)) {
        return Ok(dir.clone());
    }
    let mut looked: Vec<String> = candidates.into_iter().map(|(name, _)| name).collect();
    if flag.is_none() && std::env::var_os(ENV).is_none() {
        looked.insert(0, format!("${ENV} (not set)"));
    }
    Err(NotFound {
        looked: looked.join(", "),
    })
}

fn holds_mnist(dir: &Path) -> bool {
    ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"]
        .iter()
        .any(|name| dir.join(name).is_file() || dir.join(format!("{name}.gz")).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_taken_alone_and_named_when_empty() {
        let empty = std::env::temp_dir().join("ember-no-mnist-here");
        std::fs::create_dir_all(&empty).unwrap();
        let e = data_dir(Some(&empty)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("no MNIST files in --data {}", empty.display())),
            "{e}"
        );
        assert!(
            e.contains("t10k-labels-idx1-ubyte.gz") && e.contains(MIRROR),
            "{e}"
        );
    }

    #[test]
    fn the_repository_copy_is_found_by_flag() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
        assert_eq!(data_dir(Some(&dir)).unwrap(), dir);
    }
}
