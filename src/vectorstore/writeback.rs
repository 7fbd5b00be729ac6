//! Starting the disk write of a file's new pages early, so that the `fdatasync` which makes
//! a large record durable waits only for its last pages instead of all of them.
//!
//! The second module allowed `unsafe` (see `Cargo.toml`): one call of `sync_file_range`,
//! which neither std nor the crates in the tree offer.
#![allow(unsafe_code)]

use std::fs::File;

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to disk and returns
/// without waiting. Only a head start: durability still comes from the `fdatasync` after
/// it, so a refusal (another platform, a file system that ignores it) changes nothing.
pub fn start(file: &File, offset: u64, len: usize) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return;
        };
        // SAFETY: the descriptor belongs to `file`, which is borrowed for the call, so it is
        // open; the call takes integers only and touches no memory of this process.
        let _ = unsafe {
            libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}
