//! Config errors an operator can act on: file, key path, what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `station[2].modbus.registers[0].type`.
    pub path: String,
    pub message: String,
}

/// Why a config could not be used. `Invalid` lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the config file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {path}: {message}", file.display())]
    Syntax {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error("{}", render(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// One line per problem, each `file: key.path: message`.
    pub fn lines(&self) -> Vec<String> {
        self.to_string().lines().map(str::to_string).collect()
    }
}

fn render(file: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}: {}", file.display(), p.path, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects problems while validating, so every one is reported, not only the first.
pub struct Problems {
    file: PathBuf,
    list: Vec<Problem>,
}

impl Problems {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }
    pub fn push(&mut self, path: impl Into<String>, message: impl fmt::Display) {
        self.list.push(Problem {
            path: path.into(),
            message: message.to_string(),
        });
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// Add the problems of a later check (of what did validate), leaving out any at a key path already listed.
    pub fn extend_new(&mut self, more: ConfigError) {
        match more {
            ConfigError::Invalid { problems, .. } => {
                for q in problems {
                    if !self.list.iter().any(|p| p.path == q.path) {
                        self.list.push(q);
                    }
                }
            }
            other => self.push("", other),
        }
    }
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                file: self.file,
                problems: self.list,
            })
        }
    }
}

/// The toml crate's message without its multi-line source excerpt, plus the line number.
pub fn tidy_toml_message(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{msg} (line {line})")
        }
        None => msg,
    }
}
