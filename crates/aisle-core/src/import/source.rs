//! Where import files come from: a folder on disk, or files embedded in the
//! binary (the demo dataset, so `aisle demo` needs nothing beside the binary).

use std::io::{self, Read};
use std::path::PathBuf;

/// A set of named files. Names are as in the layouts (`transactions.csv.gz`, `members.csv`).
pub trait Source {
    /// Opens `name`; `NotFound` when it is absent.
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + Send + '_>>;
    /// Size in bytes as stored, for progress.
    fn size(&self, name: &str) -> Option<u64>;
    /// Whether `name` is present.
    fn contains(&self, name: &str) -> bool;
    /// Where the files are, for messages.
    fn describe(&self) -> String;
}

/// Files in a folder.
#[derive(Debug, Clone)]
pub struct DirSource(pub PathBuf);

impl Source for DirSource {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(std::fs::File::open(self.0.join(name))?))
    }

    fn size(&self, name: &str) -> Option<u64> {
        std::fs::metadata(self.0.join(name)).ok().map(|m| m.len())
    }

    fn contains(&self, name: &str) -> bool {
        self.0.join(name).is_file()
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

/// Files compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedSource(pub &'static [(&'static str, &'static [u8])]);

impl EmbeddedSource {
    fn find(&self, name: &str) -> Option<&'static [u8]> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bytes)| *bytes)
    }
}

impl Source for EmbeddedSource {
    fn open(&self, name: &str) -> io::Result<Box<dyn Read + Send + '_>> {
        self.find(name)
            .map(|bytes| Box::new(bytes) as Box<dyn Read + Send>)
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{name} is not embedded"))
            })
    }

    fn size(&self, name: &str) -> Option<u64> {
        self.find(name).map(|bytes| bytes.len() as u64)
    }

    fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn describe(&self) -> String {
        "the embedded demo dataset".to_owned()
    }
}
