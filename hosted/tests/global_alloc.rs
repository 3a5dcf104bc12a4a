//! The crate as Rust's `#[global_allocator]` (declared in `common`): this
//! whole test binary, the test harness included, allocates from `HEAP`.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, mpsc};

use ft_malloc_hosted::{FtMalloc, HEAP};

#[test]
fn std_collections_run_on_the_heap() {
    let before = HEAP.stats().live_blocks;
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    for i in 0..20_000u64 {
        map.entry(format!("key{}", i % 5000)).or_default().push(i);
    }
    let tree: BTreeMap<_, _> = map
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().sum::<u64>()))
        .collect();
    assert_eq!(tree.len(), 5000);
    assert_eq!(tree["key42"], 42 + 5042 + 10042 + 15042);
    assert!(
        HEAP.stats().live_blocks > before,
        "the map lives on our heap"
    );
}

#[test]
fn huge_alignments_and_sizes() {
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    #[repr(align(65536))]
    struct Aligned64K(u8);
    let pages: Vec<Box<Page>> = (0..50).map(|i| Box::new(Page([i as u8; 4096]))).collect();
    for (i, page) in pages.iter().enumerate() {
        assert_eq!((page.as_ref() as *const Page as usize) % 4096, 0);
        assert!(page.0.iter().all(|&b| b == i as u8));
    }
    let big = Box::new(Aligned64K(7));
    assert_eq!((&*big as *const Aligned64K as usize) % 65536, 0);
    assert_eq!(big.0, 7);
    let mut grow: Vec<u8> = Vec::new();
    for i in 0..(40 << 20) {
        grow.push(i as u8);
    }
    assert!(
        grow.iter()
            .enumerate()
            .step_by(4093)
            .all(|(i, &b)| b == i as u8)
    );
}

#[test]
fn threads_drop_each_others_allocations() {
    let (send, receive) = mpsc::channel::<Vec<String>>();
    let shared = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..8)
        .map(|t| {
            let send = send.clone();
            let shared = shared.clone();
            std::thread::spawn(move || {
                for round in 0..300 {
                    let batch: Vec<String> = (0..50)
                        .map(|i| "x".repeat((t * 37 + i + round) % 3000))
                        .collect();
                    shared.lock().unwrap().push(Box::new([t as u8; 100]));
                    send.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(send);
    let mut total = 0;
    for batch in receive {
        total += batch.iter().map(String::len).sum::<usize>();
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(total > 0);
    assert_eq!(shared.lock().unwrap().len(), 2400);
}

#[test]
fn realloc_keeps_contents_and_alignment() {
    let layout = Layout::from_size_align(100, 256).unwrap();
    // SAFETY: sizes are non-zero; each pointer is used with its layout and
    // freed once.
    unsafe {
        let p = FtMalloc.alloc(layout);
        assert!(!p.is_null() && (p as usize).is_multiple_of(256));
        p.write_bytes(0x3C, 100);
        let q = FtMalloc.realloc(p, layout, 1 << 20);
        assert!(!q.is_null() && (q as usize).is_multiple_of(256));
        assert!((0..100).all(|i| *q.add(i) == 0x3C));
        let z = FtMalloc.alloc_zeroed(Layout::from_size_align(5000, 16).unwrap());
        assert!((0..5000).all(|i| *z.add(i) == 0));
        FtMalloc.dealloc(z, Layout::from_size_align(5000, 16).unwrap());
        FtMalloc.dealloc(q, Layout::from_size_align(1 << 20, 256).unwrap());
    }
}
