//! The process's resident memory (`VmRSS` of `/proc/self/status`), read at most every 50 ms so
//! that a scan may check it at every read. Linux only: elsewhere it is unknown (`None`). It
//! does not account memory per job or per thread; a service job's memory budget is the
//! process's while the job runs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How old a reading may be.
const FRESH: Duration = Duration::from_millis(50);

static LAST: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

/// Resident bytes of this process, at most `FRESH` old.
pub fn resident_bytes() -> Option<u64> {
    let mut last = LAST.lock().ok()?;
    if let Some((at, bytes)) = *last
        && at.elapsed() < FRESH
    {
        return Some(bytes);
    }
    let bytes = read_resident()?;
    *last = Some((Instant::now(), bytes));
    Some(bytes)
}

fn read_resident() -> Option<u64> {
    let status = fs_err::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn resident_memory_grows_with_what_is_touched() {
        let before = super::read_resident().unwrap();
        let touched = vec![1u8; 64 << 20];
        let after = super::read_resident().unwrap();
        assert!(after >= before + (60 << 20), "{before} -> {after}");
        assert_eq!(touched.iter().map(|b| u64::from(*b)).sum::<u64>(), 64 << 20);
        assert!(super::resident_bytes().unwrap() > 0);
    }
}
