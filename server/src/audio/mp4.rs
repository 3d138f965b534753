//! A look at an MP4 file's sample tables before the demuxer reads them. Symphonia's MP4 reader reserves memory
//! for as many entries as a table claims before reading them: a few changed bytes claim four billion, and the
//! failed reservation of tens of GB aborts the whole process (found by fuzzing; see scripts/fuzz.sh). A table
//! claiming more entries than its box holds is refused here instead.

/// Boxes that hold the sample tables, from the top of the file down.
const CONTAINERS: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

/// `Err` with the reason when a sample table claims more entries than its box has room for.
pub(super) fn check_sample_tables(file: &[u8]) -> Result<(), String> {
    walk(file, 0)
}

fn walk(mut boxes: &[u8], depth: usize) -> Result<(), String> {
    while boxes.len() >= 8 {
        let size = u32::from_be_bytes([boxes[0], boxes[1], boxes[2], boxes[3]]);
        let kind = [boxes[4], boxes[5], boxes[6], boxes[7]];
        let (header, size) = match size {
            0 => (8, boxes.len()),
            1 if boxes.len() >= 16 => {
                let large = u64::from_be_bytes([boxes[8], boxes[9], boxes[10], boxes[11], boxes[12], boxes[13], boxes[14], boxes[15]]);
                (16, usize::try_from(large).unwrap_or(usize::MAX))
            }
            1 => return Ok(()),
            size => (8, usize::try_from(size).unwrap_or(usize::MAX)),
        };
        if size < header {
            // Not a box at all: the demuxer refuses it without reserving anything.
            return Ok(());
        }
        // A box cut short holds only what is there.
        let body = &boxes[header..size.min(boxes.len())];
        if CONTAINERS.contains(&&kind) && depth < CONTAINERS.len() {
            walk(body, depth + 1)?;
        } else if let Some((count_at, entry_bytes)) = table_layout(&kind, body) {
            let count = body.get(count_at..count_at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let room = body.len().saturating_sub(count_at + 4);
            if u64::from(count) * entry_bytes > room as u64 {
                let name = String::from_utf8_lossy(&kind).into_owned();
                return Err(format!("its {name} table claims {count} entries, more than the file holds"));
            }
        }
        boxes = &boxes[size.min(boxes.len())..];
    }
    Ok(())
}

/// Where a sample table's entry count is in its box (after the version and flags), and each entry's size.
fn table_layout(kind: &[u8; 4], body: &[u8]) -> Option<(usize, u64)> {
    match kind {
        b"stts" | b"co64" => Some((4, 8)),
        b"stsc" => Some((4, 12)),
        b"stco" => Some((4, 4)),
        // Sizes are listed only when they vary (a constant size of 0).
        b"stsz" if body.get(4..8) == Some(&[0, 0, 0, 0]) => Some((8, 4)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut bytes = u32::try_from(body.len() + 8).unwrap().to_be_bytes().to_vec();
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(body);
        bytes
    }

    /// A file whose only sample table is `table`, inside the boxes that hold it.
    fn file_with(table: Vec<u8>) -> Vec<u8> {
        let mut inner = table;
        for kind in CONTAINERS.iter().rev() {
            inner = boxed(kind, &inner);
        }
        let mut file = boxed(b"ftyp", b"M4A \0\0\0\0");
        file.extend_from_slice(&inner);
        file
    }

    #[test]
    fn tables_that_fit_their_boxes_pass_and_ones_that_claim_more_are_refused() {
        let two_entries = [&[0, 0, 0, 0][..], &2u32.to_be_bytes(), &[0; 16]].concat();
        assert_eq!(check_sample_tables(&file_with(boxed(b"stts", &two_entries))), Ok(()));

        let claims_billions = [&[0, 0, 0, 0][..], &u32::MAX.to_be_bytes(), &[0; 16]].concat();
        let refused = check_sample_tables(&file_with(boxed(b"stts", &claims_billions))).unwrap_err();
        assert!(refused.contains("stts") && refused.contains("4294967295"), "{refused}");
        assert!(check_sample_tables(&file_with(boxed(b"stsc", &claims_billions))).is_err());

        // A constant sample size lists no sizes, whatever the count.
        let constant = [&[0, 0, 0, 0][..], &512u32.to_be_bytes(), &u32::MAX.to_be_bytes()].concat();
        assert_eq!(check_sample_tables(&file_with(boxed(b"stsz", &constant))), Ok(()));
        let varying = [&[0, 0, 0, 0][..], &0u32.to_be_bytes(), &u32::MAX.to_be_bytes()].concat();
        assert!(check_sample_tables(&file_with(boxed(b"stsz", &varying))).is_err());

        // Not MP4 at all, or cut anywhere: nothing to refuse here.
        for cut in 0..40 {
            let _ = check_sample_tables(&file_with(boxed(b"stts", &two_entries))[..cut]);
        }
        assert_eq!(check_sample_tables(b"not an mp4 file"), Ok(()));
    }
}
