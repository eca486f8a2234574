//! A file header that states far more audio than the file holds cannot make the decoder
//! reserve memory for it: the largest single allocation while decoding stays bounded, and the
//! file is refused with a clear message. Its own test binary, since it counts allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use timbreswap_engine::clip::{decode_file_cut, MAX_CLIP_SECONDS};
use timbreswap_engine::error::ClipError;

/// The system allocator, recording the largest request.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on unchanged to the system allocator, which upholds
// `GlobalAlloc`'s contract; the only addition is an atomic maximum.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's `layout` is passed on as it came.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as `realloc`'s caller promised for `ptr`, `layout` and `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[test]
fn a_header_stating_hours_of_audio_reserves_no_more_than_its_bound() {
    // 16-bit stereo PCM at 768 kHz whose data chunk claims 4 GiB (about 23 minutes; 600 s of
    // it would be 3.7 GB as f32), followed by 0.1 s of a tone.
    let (rate, channels) = (768_000u32, 2u16);
    let frames = rate as usize / 10;
    let mut data = Vec::with_capacity(frames * 4);
    for i in 0..frames {
        let v = ((i as f32 * 0.01).sin() * 10_000.0) as i16;
        data.extend_from_slice(&v.to_le_bytes());
        data.extend_from_slice(&v.to_le_bytes());
    }
    let claimed: u32 = 0xFFFF_FF00;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(claimed.saturating_add(36)).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&claimed.to_le_bytes());
    wav.extend_from_slice(&data);
    let path = std::env::temp_dir().join(format!(
        "timbreswap-hostile-header-{}.wav",
        std::process::id()
    ));
    std::fs::write(&path, &wav).unwrap();
    LARGEST.store(0, Ordering::Relaxed);
    let result = decode_file_cut(&path, MAX_CLIP_SECONDS);
    let largest = LARGEST.load(Ordering::Relaxed);
    let _ = std::fs::remove_file(&path);
    // 64 MiB of reservation plus what decoding 0.1 s needs.
    assert!(largest <= 72 << 20, "largest allocation {largest} bytes");
    match result {
        Err(e @ ClipError::CutShort { .. }) => {
            assert!(e.to_string().contains("hostile-header"), "{e}")
        }
        other => panic!("expected the file to be refused as cut short, got {other:?}"),
    }
}
