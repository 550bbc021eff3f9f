//! Peak resident memory of this process (Linux's VmHWM), reset before each measurement so each
//! reports its own peak; elsewhere it is simply not reported.

/// Resets the peak to the current resident size (`/proc/self/clear_refs`, Linux 4.0+).
pub fn reset_peak() {
    // Best effort: where this fails the peak covers the process's whole life, which the
    // report's wording ("process peak") still describes.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident size since the last reset, in bytes.
pub fn peak_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_read_from_proc_status_in_bytes() {
        let status = "Name:\traagr2-lab\nVmPeak:\t  900 kB\nVmHWM:\t  1536 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1536 * 1024));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn touching_memory_after_a_reset_raises_the_peak() {
        let Some(_) = peak_bytes() else { return }; // not Linux
        // Other tests of this process allocate and free beside this one: a reset taken while
        // one of them holds memory sets the mark above what this block reaches once they free
        // it. Without a working reset the mark stays at the process's lifetime peak and no try
        // passes; with one, a quiet moment comes within a few tries.
        let raised = (0..10).any(|_| {
            reset_peak();
            let before = peak_bytes().unwrap();
            let block = vec![1u8; 64 << 20];
            std::hint::black_box(&block);
            peak_bytes().unwrap() >= before + (60 << 20)
        });
        assert!(
            raised,
            "the peak did not rise by a 64 MiB block after a reset"
        );
    }
}
