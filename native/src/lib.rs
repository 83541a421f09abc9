//! The hot loop of `lakehouse/sources/gnomad/records.py`, compiled: one pass over a batch of VCF lines that
//! counts tabs, finds the first eight columns, splits INFO into `key=value` pairs and maps each key to its
//! header position. Everything after (taking, splitting and casting values) stays in Arrow. The rules are
//! those of the pure-Python `_Tokens` (records.py), which is the reference and the fallback: a `;` that
//! opens INFO belongs to the first key, empty pairs are dropped, a value is missing when empty or `.`, the
//! last of a repeated key wins, and a key the header does not declare is reported by its first pair.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use memchr::{memchr, memchr_iter};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const FIXED: usize = 8; // CHROM … INFO

/// FNV-1a: INFO keys are short, and SipHash's resistance to chosen keys buys nothing on a file's own header.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// Header INFO ids → field index. Lines usually list their keys in header order, so the field after the
/// previous key is tried first (one comparison) before the hash table.
struct Fields<'a> {
    ids: Vec<&'a [u8]>,
    first: Vec<bool>, // the id's first declaration (a repeated id maps to its first, as index_in does)
    index: HashMap<&'a [u8], usize, BuildHasherDefault<Fnv>>,
}

impl<'a> Fields<'a> {
    fn new(ids: &'a [String]) -> Self {
        let mut index = HashMap::with_capacity_and_hasher(ids.len(), BuildHasherDefault::default());
        for (position, id) in ids.iter().enumerate() {
            index.entry(id.as_bytes()).or_insert(position); // first declaration wins, as index_in
        }
        let first = ids
            .iter()
            .enumerate()
            .map(|(position, id)| index[id.as_bytes()] == position)
            .collect();
        Fields {
            ids: ids.iter().map(|id| id.as_bytes()).collect(),
            first,
            index,
        }
    }

    fn find(&self, key: &[u8], guess: usize) -> Option<usize> {
        if guess < self.ids.len() && self.first[guess] && self.ids[guess] == key {
            return Some(guess);
        }
        self.index.get(key).copied()
    }
}

fn as_bytes<T: Copy>(values: &[T]) -> &[u8] {
    // Plain integers: their memory is their native-endian bytes (read back with numpy.frombuffer).
    unsafe {
        std::slice::from_raw_parts(values.as_ptr() as *const u8, std::mem::size_of_val(values))
    }
}

fn contiguous<'a, T: pyo3::buffer::Element>(
    buffer: &'a PyBuffer<T>,
    what: &str,
) -> PyResult<&'a [T]> {
    if !buffer.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{what} must be a contiguous buffer"
        )));
    }
    Ok(unsafe { std::slice::from_raw_parts(buffer.buf_ptr() as *const T, buffer.item_count()) })
}

struct Scan {
    tab_counts: Vec<i64>,
    columns: Vec<i64>, // lines × 8 × (start, end); zeros for lines with fewer than 8 columns
    pairs: Vec<i32>,   // pairs × (key start, key end, value start, value end), in buffer order
    value_at: Vec<i64>, // token index of each pair's value (4 × pair + 2), -1 when missing
    matrix: Vec<i64>,  // lines × fields: pair index of the field's last pair, -1 when absent
    first_unknown: Vec<i64>, // pair index of each line's first undeclared key, -1 when none
}

fn scan(buf: &[u8], starts: &[i64], ends: &[i64], fields: &Fields) -> Result<Scan, String> {
    let width = fields.ids.len();
    let n = starts.len();
    if ends.len() != n {
        return Err("starts and ends differ in length".to_string());
    }
    let mut out = Scan {
        tab_counts: vec![0; n],
        columns: vec![0; n * FIXED * 2],
        pairs: Vec::new(),
        value_at: Vec::new(),
        matrix: vec![-1; n * width],
        first_unknown: vec![-1; n],
    };
    for line in 0..n {
        let (start, end) = (starts[line], ends[line]);
        if start < 0 || start > end || end as usize > buf.len() {
            return Err(format!("line {line} lies outside the buffer"));
        }
        let (start, end) = (start as usize, end as usize);
        let mut tabs = [0usize; FIXED];
        let mut count = 0usize;
        for position in memchr_iter(b'\t', &buf[start..end]) {
            if count < FIXED {
                tabs[count] = start + position;
            }
            count += 1;
        }
        out.tab_counts[line] = count as i64;
        if count < FIXED - 1 {
            continue;
        }
        for column in 0..FIXED {
            let from = if column == 0 {
                start
            } else {
                tabs[column - 1] + 1
            };
            let to = if count == column { end } else { tabs[column] };
            out.columns[(line * FIXED + column) * 2] = from as i64;
            out.columns[(line * FIXED + column) * 2 + 1] = to as i64;
        }
        let (info_start, info_end) = (
            out.columns[(line * FIXED + 7) * 2] as usize,
            out.columns[(line * FIXED + 7) * 2 + 1] as usize,
        );
        if info_end <= info_start || (info_end - info_start == 1 && buf[info_start] == b'.') {
            continue;
        }
        let mut piece_start = info_start;
        let mut guess = 0usize;
        let separators =
            memchr_iter(b';', &buf[info_start + 1..info_end]).map(|p| info_start + 1 + p);
        for piece_end in separators.chain(std::iter::once(info_end)) {
            if piece_end > piece_start {
                let piece = &buf[piece_start..piece_end];
                let key_end = memchr(b'=', piece).map_or(piece_end, |p| piece_start + p);
                let value_start = if key_end < piece_end {
                    key_end + 1
                } else {
                    piece_end
                };
                let index = out.value_at.len() as i64;
                out.pairs.extend_from_slice(&[
                    piece_start as i32,
                    key_end as i32,
                    value_start as i32,
                    piece_end as i32,
                ]);
                let length = piece_end - value_start;
                let missing = length == 0 || (length == 1 && buf[value_start] == b'.');
                out.value_at.push(if missing { -1 } else { index * 4 + 2 });
                match fields.find(&buf[piece_start..key_end], guess) {
                    Some(field) => {
                        out.matrix[line * width + field] = index;
                        guess = field + 1;
                    }
                    None => {
                        if out.first_unknown[line] < 0 {
                            out.first_unknown[line] = index;
                        }
                    }
                }
            }
            piece_start = piece_end + 1;
        }
    }
    Ok(out)
}

/// tokenize(data: uint8 buffer, starts, ends: int64 buffers (a line is data[start:end], no newline),
///          ids: list[str]) →
/// (tab_counts, columns, pairs, value_at, matrix, first_unknown) as bytes (int64, pairs int32).
#[pyfunction]
fn tokenize<'py>(
    py: Python<'py>,
    data: PyBuffer<u8>,
    starts: PyBuffer<i64>,
    ends: PyBuffer<i64>,
    ids: Vec<String>,
) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let buf = contiguous(&data, "data")?;
    let starts = contiguous(&starts, "starts")?;
    let ends = contiguous(&ends, "ends")?;
    if buf.len() >= i32::MAX as usize {
        return Err(PyValueError::new_err(
            "a batch must hold less than 2 GiB of text",
        ));
    }
    let fields = Fields::new(&ids);
    let result = scan(buf, starts, ends, &fields).map_err(PyValueError::new_err)?;
    Ok(vec![
        PyBytes::new(py, as_bytes(&result.tab_counts)),
        PyBytes::new(py, as_bytes(&result.columns)),
        PyBytes::new(py, as_bytes(&result.pairs)),
        PyBytes::new(py, as_bytes(&result.value_at)),
        PyBytes::new(py, as_bytes(&result.matrix)),
        PyBytes::new(py, as_bytes(&result.first_unknown)),
    ])
}

#[pymodule]
fn lakehouse_vcf_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(tokenize, module)?)?;
    Ok(())
}
