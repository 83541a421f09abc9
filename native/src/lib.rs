//! The hot loop of `lakehouse/sources/gnomad/records.py`, compiled: one pass over a batch of VCF lines that
//! counts tabs, finds the first eight columns, splits INFO into `key=value` pairs and maps each key to its
//! header position. Everything after (taking, splitting and casting values) stays in Arrow. The rules are
//! those of the pure-Python `_Tokens` (records.py), which is the reference and the fallback: a `;` that
//! opens INFO belongs to the first key, empty pairs are dropped, a value is missing when empty or `.`, the
//! last of a repeated key wins, and a key the header does not declare is reported by its first pair.
//!
//! `typed` then reads one group of numeric INFO fields (Number=1 or Number=A) straight from the tokens into
//! typed columns over the output rows, one per ALT allele, instead of Arrow's take, split, cast and take. It parses only the plain spellings
//! of a number (see `plain_int`, `plain_float`), on which Rust and Arrow agree; a field holding any other
//! spelling is reported unparsed and goes through Arrow's cast, which decides what it means.

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

/// Typed columns of one group of fields, field-major over the output rows (one per ALT allele: line i has
/// `alt_counts[i]` of them, in order). `at` is lines × width token indices (-1: absent or missing → null);
/// token t spans `pairs[t]..pairs[t + 1]` of `buf`.
/// - Not `per_allele` (Number=1, or Number=A on single-ALT lines): a line's value goes to each of its rows.
/// - `per_allele` (Number=A): the value is split at `,`; row a gets part a, a `.` or empty part is null, and
///   a line whose part count is not its ALT count gets nulls (`counts` holds each line's part count, 0 when
///   absent, for the caller's reason). Every part is still parsed, so a field with a part only Arrow can
///   read is reported as such whatever its count.
struct Typed {
    values: Vec<u8>,   // k × rows, i32 or f64
    validity: Vec<u8>, // k × ceil(rows / 8): Arrow's bit order, each field's bitmap starting on a byte
    counts: Vec<i64>,  // k × lines (per_allele only)
    parsed: Vec<bool>, // whether every value of the field was a plain spelling
}

struct Group<'a> {
    buf: &'a [u8],
    pairs: &'a [i32],
    at: &'a [i64],
    width: usize,
    alt_counts: &'a [i64],
}

impl Group<'_> {
    fn token(&self, token: i64) -> Result<&[u8], String> {
        let token = token as usize;
        if token + 1 >= self.pairs.len() {
            return Err(format!("token {token} is outside the pairs"));
        }
        let (from, to) = (self.pairs[token] as usize, self.pairs[token + 1] as usize);
        if from > to || to > self.buf.len() {
            return Err(format!("token {token} lies outside the buffer"));
        }
        Ok(&self.buf[from..to])
    }

    fn typed<T: Copy + Default>(
        &self,
        members: &[usize],
        per_allele: bool,
        parse: fn(&[u8]) -> Option<T>,
    ) -> Result<Typed, String> {
        let width = self.width;
        if width == 0 || !self.at.len().is_multiple_of(width) {
            return Err("at is not a lines × fields matrix".to_string());
        }
        let n = self.at.len() / width;
        if self.alt_counts.len() != n {
            return Err("alt_counts and at differ in lines".to_string());
        }
        if let Some(&member) = members.iter().find(|&&member| member >= width) {
            return Err(format!("field {member} is outside the matrix"));
        }
        let mut first = Vec::with_capacity(n);
        let mut rows = 0usize;
        for &count in self.alt_counts {
            if count < 1 {
                return Err("a line has no ALT row".to_string());
            }
            first.push(rows);
            rows += count as usize;
        }
        let k = members.len();
        let bitmap = rows.div_ceil(8);
        let mut values = vec![T::default(); k * rows];
        let mut validity = vec![0u8; k * bitmap];
        let mut counts = vec![0i64; if per_allele { k * n } else { 0 }];
        let mut parsed = vec![true; k];
        let mut parts: Vec<Option<T>> = Vec::new();
        for line in 0..n {
            let row = &self.at[line * width..(line + 1) * width];
            let alleles = self.alt_counts[line] as usize;
            for (j, &member) in members.iter().enumerate() {
                if row[member] < 0 || !parsed[j] {
                    continue;
                }
                let text = self.token(row[member])?;
                let out = j * rows + first[line];
                let mut set = |offset: usize, value: T| {
                    values[out + offset] = value;
                    let bit = first[line] + offset;
                    validity[j * bitmap + bit / 8] |= 1 << (bit % 8);
                };
                if !per_allele {
                    match parse(text) {
                        Some(value) => (0..alleles).for_each(|a| set(a, value)),
                        None => parsed[j] = false,
                    }
                    continue;
                }
                parts.clear();
                for part in text.split(|&b| b == b',') {
                    if part.is_empty() || part == b"." {
                        parts.push(None);
                    } else if let Some(value) = parse(part) {
                        parts.push(Some(value));
                    } else {
                        parsed[j] = false;
                        break;
                    }
                }
                if !parsed[j] {
                    continue;
                }
                counts[j * n + line] = parts.len() as i64;
                if parts.len() == alleles {
                    for (a, part) in parts.iter().enumerate() {
                        if let Some(value) = part {
                            set(a, *value);
                        }
                    }
                }
            }
        }
        Ok(Typed {
            values: as_bytes(&values).to_vec(),
            validity,
            counts,
            parsed,
        })
    }
}

/// `-`? digits, within i32: what Arrow's string → int32 cast reads the same way (it also reads hex and
/// more, which is left to it).
fn plain_int(text: &[u8]) -> Option<i32> {
    let (negative, digits) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || digits.len() > 10 {
        return None; // i32 has at most 10 digits (leading zeros beyond that are left to Arrow)
    }
    let mut value = 0i64;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(byte - b'0');
    }
    i32::try_from(if negative { -value } else { value }).ok()
}

/// Decimal and exponent spellings (`1`, `-1.5`, `.5`, `3e-05`, `1E+05`) and nan/inf: Rust and Arrow both
/// round them correctly, so both give the same double. Anything else is left to Arrow.
fn plain_float(text: &[u8]) -> Option<f64> {
    const WORDS: [&[u8]; 9] = [
        b"nan",
        b"-nan",
        b"+nan",
        b"inf",
        b"-inf",
        b"+inf",
        b"infinity",
        b"-infinity",
        b"+infinity",
    ];
    let decimal = text
        .iter()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
    if !decimal && !WORDS.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        return None;
    }
    // ASCII by the checks above.
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// typed(data: uint8 buffer, pairs: int32 buffer, at: int64 buffer (lines × width), width,
///       alt_counts: int64 buffer (lines), members: list[int], per_allele: bool, integer: bool) →
/// (values bytes: k × rows int32 or float64, validity bytes, counts bytes: k × lines int64, parsed)
/// values, validity, counts, parsed
type Columns<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Vec<bool>,
);

#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn typed<'py>(
    py: Python<'py>,
    data: PyBuffer<u8>,
    pairs: PyBuffer<i32>,
    at: PyBuffer<i64>,
    width: usize,
    alt_counts: PyBuffer<i64>,
    members: Vec<usize>,
    per_allele: bool,
    integer: bool,
) -> PyResult<Columns<'py>> {
    let group = Group {
        buf: contiguous(&data, "data")?,
        pairs: contiguous(&pairs, "pairs")?,
        at: contiguous(&at, "at")?,
        width,
        alt_counts: contiguous(&alt_counts, "alt_counts")?,
    };
    let result = if integer {
        group.typed(&members, per_allele, plain_int)
    } else {
        group.typed(&members, per_allele, plain_float)
    }
    .map_err(PyValueError::new_err)?;
    Ok((
        PyBytes::new(py, &result.values),
        PyBytes::new(py, &result.validity),
        PyBytes::new(py, as_bytes(&result.counts)),
        result.parsed,
    ))
}

#[pymodule]
fn lakehouse_vcf_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(tokenize, module)?)?;
    module.add_function(wrap_pyfunction!(typed, module)?)?;
    Ok(())
}
