//! Reading input files (scenarios, `sim policy`'s config and events) with
//! bounded memory and without hanging.
//!
//! Only regular files are read: a FIFO with no writer would block `open`
//! forever, and a device such as `/dev/zero` never ends. A file is read up to
//! `INPUT_BYTES_MAX`; a longer one is refused before it is parsed, so reading
//! input costs at most that much memory whatever the path points at.
//! Symbolic links are followed (a link to a regular file is fine).

use std::io::{self, Read};
use std::path::Path;

/// The largest input file read: 16 MiB. The largest committed scenario is a
/// few kilobytes, so this leaves room for generated ones.
pub const INPUT_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Reads the regular file at `path`, refusing anything else and anything
/// longer than `INPUT_BYTES_MAX`. The error's message says what was wrong
/// (callers prefix the file name).
pub fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    // Check the kind before opening: opening a FIFO blocks until a writer
    // comes, which may be never.
    let metadata = std::fs::metadata(path)?;
    check_kind(&metadata)?;
    let file = std::fs::File::open(path)?;
    // The path may have been replaced between the two calls: check the file
    // actually opened too.
    let metadata = file.metadata()?;
    check_kind(&metadata)?;
    let mut bytes = Vec::with_capacity(metadata.len().min(INPUT_BYTES_MAX) as usize);
    // One byte more than the cap tells a file at the cap from a longer one,
    // even if it grows while being read.
    file.take(INPUT_BYTES_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > INPUT_BYTES_MAX {
        return Err(too_large());
    }
    Ok(bytes)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "the file is larger than {} MiB ({INPUT_BYTES_MAX} bytes), the most an input file may be",
            INPUT_BYTES_MAX / (1024 * 1024)
        ),
    )
}

fn check_kind(metadata: &std::fs::Metadata) -> io::Result<()> {
    let file_type = metadata.file_type();
    if file_type.is_file() {
        return Ok(());
    }
    let kind = describe(file_type);
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file (it is {kind}); give the path of a JSON file"),
    ))
}

/// What a non-regular file is, for messages.
fn describe(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a named pipe";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sim-input-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    // A regular file is read whole, up to and including the cap.
    #[test]
    fn reads_a_regular_file_up_to_the_cap() {
        let dir = temp("regular");
        let path = dir.join("at-cap.json");
        std::fs::write(&path, vec![b' '; INPUT_BYTES_MAX as usize]).expect("write");
        assert_eq!(
            read_input(&path).expect("read").len() as u64,
            INPUT_BYTES_MAX
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // One byte over the cap is refused, with the cap in the message.
    #[test]
    fn refuses_a_file_over_the_cap() {
        let dir = temp("large");
        let path = dir.join("large.json");
        std::fs::write(&path, vec![b' '; INPUT_BYTES_MAX as usize + 1]).expect("write");
        let error = read_input(&path).expect_err("too large");
        assert_eq!(
            error.to_string(),
            "the file is larger than 16 MiB (16777216 bytes), the most an input file may be"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // A directory is refused by kind, not with the OS's "Is a directory".
    #[test]
    fn refuses_a_directory() {
        let dir = temp("directory");
        let error = read_input(&dir).expect_err("directory");
        assert_eq!(
            error.to_string(),
            "not a regular file (it is a directory); give the path of a JSON file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // A character device that never ends is refused before any read.
    #[cfg(unix)]
    #[test]
    fn refuses_dev_zero() {
        let error = read_input(Path::new("/dev/zero")).expect_err("device");
        assert_eq!(
            error.to_string(),
            "not a regular file (it is a character device); give the path of a JSON file"
        );
    }
}
