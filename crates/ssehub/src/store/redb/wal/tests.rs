use super::scan::scan;
use super::*;

fn payloads(seqs: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    seqs.map(|seq| (seq, format!("entry {seq}").into_bytes()))
        .collect()
}

fn write(wal: &mut Wal, records: &[(u64, Vec<u8>)]) {
    wal.append(records.iter().map(|(s, p)| (*s, p.as_slice())))
        .unwrap();
}

fn seqs(found: &Recovered) -> Vec<u64> {
    found.records.iter().map(|(s, _)| *s).collect()
}

fn bytes_of(wal: &Wal) -> Vec<u8> {
    std::fs::read(wal.path()).unwrap()
}

#[test]
fn missing_file_recovers_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let found = recover(dir.path(), 0).unwrap();
    assert!(found.records.is_empty() && found.invalid.is_none() && found.damage.is_none());
}

#[test]
fn batches_read_back_in_order_then_unused_space_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    let all = payloads(1..=5);
    write(&mut wal, &all[..2]);
    write(&mut wal, &all[2..]);
    let found = recover(dir.path(), 0).unwrap();
    assert_eq!(found.records, all);
    assert_eq!((found.invalid, found.damage), (None, None));
    assert_eq!(found.end, wal.used());
    // The file was grown with zeroes in one step, not record by record.
    let len = std::fs::metadata(wal.path()).unwrap().len();
    assert_eq!(len, GROW_BYTES);
}

#[test]
fn torn_last_record_is_dropped_and_earlier_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    write(&mut wal, &payloads(1..=3));
    let bytes = bytes_of(&wal);
    let end = wal.used() as usize;
    // A crash in the middle of the last record: its tail never reached the disk.
    for cut in [end - 1, end - 5, end - 12] {
        let mut torn = bytes[..end].to_vec();
        torn[cut..].fill(0);
        let found = scan(&torn, 0);
        assert_eq!(seqs(&found), [1, 2], "cut at {cut}");
        assert_eq!(found.invalid, Some("record checksum mismatch"));
        assert_eq!(found.damage, None);
    }
    // The file itself cut short inside the last record.
    let found = scan(&bytes[..end - 3], 0);
    assert_eq!(seqs(&found), [1, 2]);
    assert_eq!(found.invalid, Some("record runs past the end of the file"));
    let found = scan(&bytes[..end - "entry 3".len() - 3], 0);
    assert_eq!(found.invalid, Some("truncated record header"));
}

#[test]
fn damage_inside_the_last_batch_is_a_torn_tail() {
    // A power loss may persist a batch's pages in any order, so a record of the batch in flight
    // can be valid after an invalid one: it was never acknowledged, so the start goes on.
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    write(&mut wal, &payloads(1..=3));
    let mut bytes = bytes_of(&wal);
    let second = HEADER + "entry 1".len();
    bytes[second + HEADER] ^= 1;
    let found = scan(&bytes, 0);
    assert_eq!(seqs(&found), [1]);
    assert_eq!(found.invalid, Some("record checksum mismatch"));
    assert_eq!(found.damage, None);
}

/// Regression (issue 15): one flipped byte in the middle of the log silently dropped every
/// acknowledged update after it, logged as normal after a crash.
#[test]
fn a_damaged_record_followed_by_a_later_batch_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    let all = payloads(1..=9);
    write(&mut wal, &all[..3]);
    let second = wal.used();
    write(&mut wal, &all[3..6]);
    let third = wal.used();
    write(&mut wal, &all[6..]);
    let clean = bytes_of(&wal);
    let expected = |reason| Damage {
        offset: second,
        reason,
        later_offset: third,
        later_seq: 7,
    };
    // A flipped byte in the second batch's payload, in its header, and the header zeroed.
    let mut bytes = clean.clone();
    bytes[second as usize + HEADER + 2] ^= 0x20;
    let found = scan(&bytes, 0);
    assert_eq!(seqs(&found), [1, 2, 3]);
    assert_eq!(found.damage, Some(expected("record checksum mismatch")));
    let mut bytes = clean.clone();
    bytes[second as usize + 17] ^= 0x01;
    assert_eq!(
        scan(&bytes, 0).damage,
        Some(expected("record checksum mismatch"))
    );
    let mut bytes = clean;
    bytes[second as usize..second as usize + HEADER].fill(0);
    assert_eq!(
        scan(&bytes, 0).damage,
        Some(expected("zeroed record header"))
    );
}

#[test]
fn damage_to_the_first_record_is_found_without_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    // Seqs 1 to 4 are durable in redb; the log's current generation starts at 5.
    let all = payloads(5..=8);
    write(&mut wal, &all[..2]);
    let later = wal.used();
    write(&mut wal, &all[2..]);
    let mut bytes = bytes_of(&wal);
    bytes[HEADER] ^= 0x01;
    let found = scan(&bytes, 4);
    assert!(found.records.is_empty());
    assert_eq!(
        found
            .damage
            .map(|d| (d.offset, d.later_offset, d.later_seq)),
        Some((0, later, 7))
    );
}

#[test]
fn records_of_an_older_generation_are_no_evidence_of_damage() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    let old = payloads(1..=8);
    for pair in old.chunks(2) {
        write(&mut wal, pair);
    }
    // Checkpointed: seqs up to 8 are durable, the log starts over shorter than before.
    wal.reset();
    write(&mut wal, &[(9, b"new".to_vec())]);
    let clean = bytes_of(&wal);
    let found = scan(&clean, 8);
    assert_eq!(seqs(&found), [9]);
    assert_eq!(found.damage, None);
    // Even with the only current record damaged, the old batches behind it are no evidence.
    let mut bytes = clean;
    bytes[HEADER] ^= 0x01;
    let found = scan(&bytes, 8);
    assert!(found.records.is_empty());
    assert_eq!(found.damage, None);
}

#[test]
fn reset_hides_the_previous_generation_behind_the_new_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    write(&mut wal, &payloads(1..=4));
    wal.reset();
    // Exactly as long as the old record 1, so the old record 2 follows it directly; it
    // continues the seqs but belongs to the old generation.
    write(&mut wal, &[(1, b"entry X".to_vec())]);
    let found = recover(dir.path(), 0).unwrap();
    assert_eq!(found.records, [(1, b"entry X".to_vec())]);
    assert_eq!((found.invalid, found.damage), (None, None));
}

#[test]
fn a_marker_hides_a_refused_batch_and_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    let all = payloads(1..=6);
    write(&mut wal, &all[..2]);
    let refused = wal.used();
    write(&mut wal, &all[2..4]);
    write(&mut wal, &all[4..]);
    wal.cut_at(refused).unwrap();
    let found = recover(dir.path(), 0).unwrap();
    assert_eq!(seqs(&found), [1, 2]);
    assert_eq!((found.invalid, found.damage), (None, None));
}

/// What the writer relies on after a batch was refused although its bytes reached the log (the
/// `fdatasync` failed, or a full disk cut its `write` short).
#[test]
fn a_batch_refused_after_reaching_the_file_is_not_recovered_once_cut() {
    let faults = [
        Fault::SyncFails,
        Fault::WriteStopsAfter(HEADER + 3),
        Fault::WriteStopsAfter(2 * HEADER + 16),
    ];
    for fault in faults {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path()).unwrap();
        let all = payloads(1..=4);
        write(&mut wal, &all[..2]);
        let at = wal.used();
        wal.inject(fault);
        let refused = wal.append(all[2..].iter().map(|(s, p)| (*s, p.as_slice())));
        assert!(refused.is_err());
        wal.cut_at(at).unwrap();
        let found = recover(dir.path(), 0).unwrap();
        assert_eq!(seqs(&found), [1, 2], "{fault:?}");
        assert_eq!(found.damage, None, "{fault:?}");
    }
}

#[test]
fn a_cut_where_nothing_was_written_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    wal.cut_at(0).unwrap();
    assert_eq!(std::fs::metadata(wal.path()).unwrap().len(), 0);
}

#[test]
fn a_gap_in_seqs_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    write(&mut wal, &[(1, b"a".to_vec()), (3, b"c".to_vec())]);
    let found = recover(dir.path(), 0).unwrap();
    assert_eq!(seqs(&found), [1]);
    assert_eq!(
        found.invalid,
        Some("record seq does not follow the previous one")
    );
}

#[test]
fn a_batch_larger_than_the_file_grows_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    let big = vec![7_u8; GROW_BYTES as usize + 10];
    wal.append([(1, big.as_slice())]).unwrap();
    write(&mut wal, &[(2, b"after".to_vec())]);
    let found = recover(dir.path(), 0).unwrap();
    assert_eq!(seqs(&found), [1, 2]);
    assert_eq!(found.records[0].1, big);
    let len = std::fs::metadata(wal.path()).unwrap().len();
    assert_eq!(len, 2 * GROW_BYTES);
}

#[test]
fn arbitrary_bytes_never_panic() {
    use proptest::prelude::*;
    proptest!(|(bytes in prop::collection::vec(any::<u8>(), 0..256), durable in any::<u64>())| {
        let _ = scan(&bytes, durable);
    });
}
