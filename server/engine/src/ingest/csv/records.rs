//! Splits CSV bytes, arriving in chunks cut anywhere, into blocks of
//! records with UTF-8 fields and the line each record starts on.
//!
//! csv-core does quoting and escaping and keeps its state between chunks,
//! so a chunk may end inside a quoted field or a multi-byte character.
//! This adds what an upload needs on top: every record must have as many
//! fields as the first, fields must be UTF-8, a quote left open at the end
//! is an error rather than a silently swallowed file, a byte-order mark is
//! dropped even when split across chunks, and records come out in blocks
//! of bounded size.
//!
//! Most files quote nothing, and for them csv-core's byte-at-a-time state
//! machine was the largest single cost of an upload. So between records,
//! whole lines up to the next quote (or escape) byte are split by a vector
//! search for delimiters and line ends instead; csv-core takes over for any
//! line holding a quote, a lone carriage return, or the cut of a chunk, and
//! both keep the same line count.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use memchr::{memchr, memchr2, memrchr};

use crate::error::{Error, Result};

/// Records per block: large enough for columnar encoding to be efficient.
const BLOCK_ROWS: usize = 16 * 1024;
/// Field bytes per block: bounds memory when rows are wide.
const BLOCK_BYTES: usize = 8 * 1024 * 1024;
/// Longest record accepted. A record is held whole until it ends, so
/// without a bound one quote left open near the start of a large file
/// would hold the rest of the file in memory.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
const BOM: &[u8] = b"\xef\xbb\xbf";

/// How the file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
}

impl Default for Dialect {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            escape: None,
        }
    }
}

/// Records of one file, row-major: every field's text and where it lies.
#[derive(Debug)]
pub struct Block {
    /// The records' bytes; may hold delimiters and line ends between fields.
    data: String,
    /// Start and end offsets in `data` of each field, `rows * columns` of
    /// them.
    starts: Vec<u32>,
    ends: Vec<u32>,
    /// The line each record's last byte is on.
    end_lines: Vec<u64>,
    columns: usize,
}

impl Block {
    pub fn rows(&self) -> usize {
        self.end_lines.len()
    }

    pub fn columns(&self) -> usize {
        self.columns
    }

    pub fn field(&self, row: usize, column: usize) -> &str {
        let index = row * self.columns + column;
        &self.data[self.starts[index] as usize..self.ends[index] as usize]
    }

    /// Every record's field `column`, in order: the hot path of conversion.
    pub fn column(&self, column: usize) -> impl Iterator<Item = &str> {
        let starts = self.starts[column..].iter().step_by(self.columns);
        let ends = self.ends[column..].iter().step_by(self.columns);
        starts
            .zip(ends)
            .map(|(&start, &end)| &self.data[start as usize..end as usize])
    }

    /// The line (from 1) a record starts on.
    pub fn line(&self, row: usize) -> u64 {
        start_line(
            self.data.as_bytes(),
            &self.starts,
            &self.ends,
            &self.end_lines,
            self.columns,
            row,
        )
    }

    /// Every record after the first (the first is a header).
    pub fn without_first_row(&self) -> Block {
        let skip = self.columns;
        let offset = self.ends[skip - 1];
        let rebase = |bounds: &[u32]| bounds[skip..].iter().map(|b| b - offset).collect();
        Block {
            data: self.data[offset as usize..].to_string(),
            starts: rebase(&self.starts),
            ends: rebase(&self.ends),
            end_lines: self.end_lines[1..].to_vec(),
            columns: self.columns,
        }
    }
}

/// A record's first line: its last line less the line breaks inside its
/// quoted fields.
fn start_line(
    data: &[u8],
    starts: &[u32],
    ends: &[u32],
    end_lines: &[u64],
    columns: usize,
    row: usize,
) -> u64 {
    let start = starts[row * columns] as usize;
    let end = ends[(row + 1) * columns - 1] as usize;
    let inner = data[start..end].iter().filter(|b| **b == b'\n').count() as u64;
    end_lines[row] - inner
}

/// Finds delimiters and line-end bytes eight at a time: a word's mask has
/// the high bit of each byte that is one of them.
struct SpecialBytes {
    delimiter: u64,
}

const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const HIGH: u64 = 0x8080_8080_8080_8080;
const ONES: u64 = 0x0101_0101_0101_0101;

impl SpecialBytes {
    fn new(delimiter: u8) -> Self {
        Self {
            delimiter: ONES * u64::from(delimiter),
        }
    }

    /// The special bytes among `bytes[at..at + 8]` (fewer at the end, where
    /// nothing past `bytes` is reported).
    fn in_word(&self, bytes: &[u8], at: usize) -> u64 {
        if let Some(word) = bytes.get(at..at + 8) {
            return self.in_bits(u64::from_le_bytes(word.try_into().expect("eight bytes")));
        }
        let mut word = [0u8; 8];
        let available = bytes.len() - at;
        word[..available].copy_from_slice(&bytes[at..]);
        self.in_bits(u64::from_le_bytes(word)) & ((1u64 << (available * 8)) - 1)
    }

    fn in_bits(&self, word: u64) -> u64 {
        zero_bytes(word ^ self.delimiter)
            | zero_bytes(word ^ (ONES * u64::from(b'\n')))
            | zero_bytes(word ^ (ONES * u64::from(b'\r')))
    }
}

/// The high bit of every zero byte of `word`, exactly (no borrow between
/// bytes).
fn zero_bytes(word: u64) -> u64 {
    !(((word & LOW7) + LOW7) | word) & HIGH
}

/// Turns a stream of byte chunks into [`Block`]s.
pub struct Splitter {
    reader: Reader,
    dialect: Dialect,
    /// Line breaks consumed by the quote-free path, which csv-core's line
    /// count does not see.
    plain_lines: u64,
    /// csv-core stands at the start of a record after a line feed, so the
    /// quote-free path may take over.
    at_line_start: bool,
    /// Tests turn the quote-free path off to compare it with csv-core.
    #[cfg(test)]
    plain_enabled: bool,
    /// Fields per record, from the first record.
    columns: Option<usize>,
    /// Whether the first record is a header, whose fields name the
    /// columns in messages until [`Splitter::set_names`] says otherwise.
    header: bool,
    names: Vec<String>,
    /// Record bytes; `data_len` of them are used.
    data: Vec<u8>,
    data_len: usize,
    /// Bounds of the complete records' fields.
    starts: Vec<u32>,
    ends: Vec<u32>,
    /// csv-core's field ends for the record in progress, relative to
    /// `record_start`; `record_fields` of them used.
    core_ends: Vec<usize>,
    record_start: usize,
    record_fields: usize,
    end_lines: Vec<u64>,
    /// The first bytes, held until it is known whether they are a BOM.
    head: Vec<u8>,
    started: bool,
}

impl Splitter {
    pub fn new(dialect: Dialect, header: bool) -> Self {
        let reader = ReaderBuilder::new()
            .delimiter(dialect.delimiter)
            .quote(dialect.quote)
            .escape(dialect.escape)
            .double_quote(true)
            .build();
        Self {
            reader,
            dialect,
            plain_lines: 0,
            at_line_start: false,
            #[cfg(test)]
            plain_enabled: true,
            columns: None,
            header,
            names: Vec::new(),
            data: Vec::new(),
            data_len: 0,
            starts: Vec::new(),
            ends: Vec::new(),
            core_ends: vec![0; 64],
            record_start: 0,
            record_fields: 0,
            end_lines: Vec::new(),
            head: Vec::new(),
            started: false,
        }
    }

    /// Column names to use in messages instead of numbers.
    pub fn set_names(&mut self, names: Vec<String>) {
        self.names = names;
    }

    /// Splits `input`; full blocks are appended to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<Block>) -> Result<()> {
        if !self.started {
            self.head.extend_from_slice(input);
            if self.head.len() < BOM.len() && BOM.starts_with(&self.head) {
                return Ok(());
            }
            self.started = true;
            let head = std::mem::take(&mut self.head);
            let body = head.strip_prefix(BOM).unwrap_or(&head);
            return self.split(body, out);
        }
        self.split(input, out)
    }

    /// Ends the input: the last record, and the last block if any.
    pub fn finish(&mut self, out: &mut Vec<Block>) -> Result<()> {
        if !self.started {
            self.started = true;
            let head = std::mem::take(&mut self.head);
            if head != BOM {
                self.split(&head, out)?;
            }
        }
        // A line break after the last record ends it if it had none; if it
        // is swallowed instead, a quoted field is still open.
        self.split(b"\n", out)?;
        let (result, _, _, _) = self.reader.read_record(
            &[],
            &mut self.data[self.data_len..],
            &mut self.core_ends[self.record_fields..],
        );
        if let ReadRecordResult::Record = result {
            let line = self.open_record_line();
            return Err(Error::BadCsv {
                line,
                column: None,
                detail: "a quoted field is not closed before the end of the file".into(),
            });
        }
        if self.rows() > 0 {
            out.push(self.take_block()?);
        }
        Ok(())
    }

    fn rows(&self) -> usize {
        self.end_lines.len()
    }

    /// The line the unfinished record started on.
    fn open_record_line(&self) -> u64 {
        let inner = self.data[self.record_start..self.data_len]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        self.line().saturating_sub(inner)
    }

    /// The line csv-core is on, counting those the quote-free path took.
    fn line(&self) -> u64 {
        self.reader.line() + self.plain_lines
    }

    fn split(&mut self, input: &[u8], out: &mut Vec<Block>) -> Result<()> {
        let mut at = 0;
        while at < input.len() {
            if self.at_line_start {
                at += self.split_plain(&input[at..], out)?;
                if at == input.len() {
                    break;
                }
            }
            // Field bytes never outgrow the input they come from.
            let need = self.data_len + (input.len() - at) + 1;
            if self.data.len() < need {
                self.data.resize(need.max(self.data.len() * 2), 0);
            }
            let (result, read, written, ends) = self.reader.read_record(
                &input[at..],
                &mut self.data[self.data_len..],
                &mut self.core_ends[self.record_fields..],
            );
            at += read;
            self.data_len += written;
            self.record_fields += ends;
            if self.data_len - self.record_start > MAX_RECORD_BYTES {
                return Err(Error::BadCsv {
                    line: self.open_record_line(),
                    column: None,
                    detail: format!(
                        "the record is longer than {} MiB (is a quoted field left open?)",
                        MAX_RECORD_BYTES >> 20
                    ),
                });
            }
            if read > 0 {
                self.at_line_start = false;
            }
            match result {
                ReadRecordResult::InputEmpty | ReadRecordResult::End => break,
                ReadRecordResult::OutputFull => {
                    let len = self.data.len();
                    self.data.resize(len * 2 + 1024, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    if let Some(expected) = self.columns
                        && self.record_fields >= expected
                    {
                        return Err(self.ragged(None, expected, self.open_record_line()));
                    }
                    let len = self.core_ends.len();
                    self.core_ends.resize(len * 2, 0);
                }
                ReadRecordResult::Record => {
                    let last = input[..at].last().copied();
                    self.at_line_start =
                        matches!(last, Some(b'\n' | b'\r')) && self.plain_allowed();
                    self.end_record(last)?;
                    if self.rows() >= BLOCK_ROWS || self.data_len >= BLOCK_BYTES {
                        out.push(self.take_block()?);
                    }
                }
            }
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn plain_allowed(&self) -> bool {
        true
    }

    #[cfg(test)]
    fn plain_allowed(&self) -> bool {
        self.plain_enabled
    }

    /// Splits the complete, quote-free lines at the start of `input`
    /// (csv-core standing at a line start); returns the bytes consumed.
    /// Gives back to csv-core a line holding a lone carriage return, which
    /// csv-core treats as a line end of its own. Each line is copied whole,
    /// delimiters included, and its fields are bounds into the copy.
    fn split_plain(&mut self, input: &[u8], out: &mut Vec<Block>) -> Result<usize> {
        let Some(expected) = self.columns else {
            return Ok(0);
        };
        let special = match self.dialect.escape {
            Some(escape) => memchr2(self.dialect.quote, escape, input),
            None => memchr(self.dialect.quote, input),
        };
        let region = &input[..special.unwrap_or(input.len())];
        let Some(last_break) = memrchr(b'\n', region) else {
            return Ok(0);
        };
        let region = &region[..=last_break];
        let need = self.data_len + region.len();
        if self.data.len() < need {
            self.data.resize(need.max(self.data.len() * 2), 0);
        }
        let finder = SpecialBytes::new(self.dialect.delimiter);
        let mut line_start = 0;
        let mut field_start = 0;
        let mut fields = 0;
        let mut word_at = 0;
        while word_at < region.len() {
            let mut found = finder.in_word(region, word_at);
            while found != 0 {
                let at = word_at + (found.trailing_zeros() / 8) as usize;
                found &= found - 1;
                if at < line_start {
                    // The line feed of a CRLF pair that already ended a line.
                    continue;
                }
                // Where a byte of this line will sit in `data`.
                let placed = |i: usize| (self.data_len + i - line_start) as u32;
                let byte = region[at];
                if byte == self.dialect.delimiter {
                    self.starts.push(placed(field_start));
                    self.ends.push(placed(at));
                    fields += 1;
                    field_start = at + 1;
                    continue;
                }
                let line_end = match byte {
                    b'\r' if region.get(at + 1) == Some(&b'\n') => at + 2,
                    b'\r' => {
                        self.starts.truncate(self.starts.len() - fields);
                        self.ends.truncate(self.ends.len() - fields);
                        return Ok(line_start);
                    }
                    _ => at + 1,
                };
                if fields > 0 || at > line_start {
                    self.starts.push(placed(field_start));
                    self.ends.push(placed(at));
                    fields += 1;
                    if fields != expected {
                        return Err(self.ragged(Some(fields), expected, self.line()));
                    }
                    let len = line_end - line_start;
                    self.data[self.data_len..self.data_len + len]
                        .copy_from_slice(&region[line_start..line_end]);
                    self.data_len += len;
                    self.end_lines.push(self.line());
                    self.record_start = self.data_len;
                    if self.rows() >= BLOCK_ROWS || self.data_len >= BLOCK_BYTES {
                        out.push(self.take_block()?);
                    }
                }
                // Otherwise an empty line, which csv-core skips too.
                self.plain_lines += 1;
                fields = 0;
                line_start = line_end;
                field_start = line_end;
            }
            word_at += 8;
        }
        Ok(line_start)
    }

    fn end_record(&mut self, last_byte: Option<u8>) -> Result<()> {
        let fields = self.record_fields;
        let expected = *self.columns.get_or_insert(fields);
        let end_line = match last_byte {
            Some(b'\n') => self.line() - 1,
            _ => self.line(),
        };
        if fields != expected {
            let inner = self.data[self.record_start..self.data_len]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            return Err(self.ragged(Some(fields), expected, end_line - inner));
        }
        let names_from_header = self.end_lines.is_empty() && self.names.is_empty() && self.header;
        let mut start = self.record_start;
        for &end in &self.core_ends[..fields] {
            let end = self.record_start + end;
            if names_from_header {
                self.names
                    .push(String::from_utf8_lossy(&self.data[start..end]).into_owned());
            }
            self.starts.push(start as u32);
            self.ends.push(end as u32);
            start = end;
        }
        self.end_lines.push(end_line);
        self.record_start = self.data_len;
        self.record_fields = 0;
        Ok(())
    }

    fn ragged(&self, found: Option<usize>, expected: usize, line: u64) -> Error {
        let found = found.map_or_else(|| format!("more than {expected}"), |n| n.to_string());
        Error::BadCsv {
            line,
            column: None,
            detail: format!("the record has {found} fields where the first record has {expected}"),
        }
    }

    /// Hands out the complete records; called only between records.
    /// The buffers stay with the splitter (copying out what is used costs
    /// less than zeroing and faulting in fresh ones for every block).
    fn take_block(&mut self) -> Result<Block> {
        let columns = self.columns.unwrap_or(0);
        let data = self.data[..self.data_len].to_vec();
        let bounds = self.starts.len();
        let starts = std::mem::replace(&mut self.starts, Vec::with_capacity(bounds));
        let ends = std::mem::replace(&mut self.ends, Vec::with_capacity(bounds));
        let end_lines = std::mem::take(&mut self.end_lines);
        self.data_len = 0;
        self.record_start = 0;
        let not_utf8 = |data: &[u8], index: usize| {
            let (row, column) = (index / columns, index % columns);
            Error::BadCsv {
                line: start_line(data, &starts, &ends, &end_lines, columns, row),
                column: Some(self.column_name(column)),
                detail: "the field is not valid UTF-8".into(),
            }
        };
        let data = String::from_utf8(data).map_err(|e| {
            let bad = e.utf8_error().valid_up_to() as u32;
            not_utf8(e.as_bytes(), ends.partition_point(|end| *end <= bad))
        })?;
        // The fields are stored without their separators, so halves of a
        // character in two fields can join into valid text: each field
        // must also begin and end on a character boundary.
        let split = |bound: &u32| !data.is_char_boundary(*bound as usize);
        if let Some(index) = (0..ends.len()).find(|&i| split(&starts[i]) || split(&ends[i])) {
            return Err(not_utf8(data.as_bytes(), index));
        }
        Ok(Block {
            data,
            starts,
            ends,
            end_lines,
            columns,
        })
    }

    fn column_name(&self, column: usize) -> String {
        self.names
            .get(column)
            .cloned()
            .unwrap_or_else(|| format!("#{}", column + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `input` cut into pieces at `cuts`; returns (line, fields) per record.
    fn split(input: &[u8], cuts: &[usize], dialect: Dialect) -> Result<Vec<(u64, Vec<String>)>> {
        split_with(input, cuts, dialect, true)
    }

    fn split_with(
        input: &[u8],
        cuts: &[usize],
        dialect: Dialect,
        plain: bool,
    ) -> Result<Vec<(u64, Vec<String>)>> {
        let mut splitter = Splitter::new(dialect, true);
        splitter.plain_enabled = plain;
        let mut blocks = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            splitter.push(&input[at..cut], &mut blocks)?;
            at = cut;
        }
        splitter.finish(&mut blocks)?;
        Ok(blocks
            .iter()
            .flat_map(|b| {
                (0..b.rows()).map(move |r| {
                    (
                        b.line(r),
                        (0..b.columns())
                            .map(|c| b.field(r, c).to_string())
                            .collect(),
                    )
                })
            })
            .collect())
    }

    fn record(line: u64, fields: &[&str]) -> (u64, Vec<String>) {
        (line, fields.iter().map(|f| f.to_string()).collect())
    }

    #[test]
    fn any_cut_gives_the_same_records() {
        let input = "\u{feff}id,name,note\r\n1,\"Ørsted, A\",\"two\nlines\"\r\n2,,\"say \"\"hi\"\"\"\r\n3,日本,😀\r\n".as_bytes();
        let expected = vec![
            record(1, &["id", "name", "note"]),
            record(2, &["1", "Ørsted, A", "two\nlines"]),
            record(4, &["2", "", "say \"hi\""]),
            record(5, &["3", "日本", "😀"]),
        ];
        for cut in 0..=input.len() {
            assert_eq!(
                split(input, &[cut], Dialect::default()).unwrap(),
                expected,
                "cut at {cut}"
            );
        }
        for a in 0..input.len() {
            let b = (a + 1..=input.len()).step_by(3);
            for b in b {
                assert_eq!(
                    split(input, &[a, b], Dialect::default()).unwrap(),
                    expected,
                    "cuts {a},{b}"
                );
            }
        }
    }

    #[test]
    fn last_record_needs_no_line_break_and_other_dialects_work() {
        let dialect = Dialect {
            delimiter: b'\t',
            quote: b'\'',
            escape: Some(b'\\'),
        };
        let input = b"a\tb\n'x\\'y'\t'1\t2'";
        assert_eq!(
            split(input, &[], dialect).unwrap(),
            vec![record(1, &["a", "b"]), record(2, &["x'y", "1\t2"])]
        );
    }

    #[test]
    fn ragged_records_name_their_line() {
        let err = split(b"a,b\n1,2\n\"3\n\",4,5\n", &[], Dialect::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CSV line 3: the record has 3 fields where the first record has 2"
        );
        let err = split(b"a,b,c\n1,2,3\n4\n", &[5], Dialect::default()).unwrap_err();
        assert!(err.to_string().starts_with("CSV line 3:"), "{err}");
        let wide = format!("a,b\n1,2\n{}\n", vec!["x"; 500].join(","));
        let err = split(wide.as_bytes(), &[], Dialect::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 3: the record has 500 fields where the first record has 2"),
            "{err}"
        );
    }

    #[test]
    fn an_open_quote_at_the_end_is_an_error() {
        let err = split(
            b"a,b\n1,2\n3,\"never closed\n4,5\n",
            &[],
            Dialect::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CSV line 3: a quoted field is not closed before the end of the file"
        );
    }

    #[test]
    fn a_record_cannot_grow_without_bound() {
        let mut splitter = Splitter::new(Dialect::default(), true);
        let mut blocks = Vec::new();
        splitter.push(b"a,b\n1,2\n3,\"open", &mut blocks).unwrap();
        let chunk = vec![b'x'; 1 << 20];
        let err = (0..=MAX_RECORD_BYTES >> 20)
            .find_map(|_| splitter.push(&chunk, &mut blocks).err())
            .expect("refused before the whole file is held");
        assert_eq!(
            err.to_string(),
            "CSV line 3: the record is longer than 64 MiB (is a quoted field left open?)"
        );
    }

    #[test]
    fn a_character_split_across_records_is_invalid_utf8() {
        // `\xcc` ends one record and `\xa5` starts the next: each field is
        // invalid UTF-8 though the two joined are U+0325 (found by the
        // fuzzer in `just test`: slicing the field panicked).
        let err = split(b"a\n`\xcc\r\xa5lE\n", &[], Dialect::default()).unwrap_err();
        assert!(err.to_string().contains("not valid UTF-8"), "{err}");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn invalid_utf8_names_line_and_column() {
        let mut splitter = Splitter::new(Dialect::default(), true);
        splitter.set_names(vec!["id".into(), "name".into()]);
        let mut blocks = Vec::new();
        splitter
            .push(b"id,name\n1,ok\n2,\"a\nb\xff\"\n", &mut blocks)
            .unwrap();
        let err = splitter.finish(&mut blocks).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CSV line 3, column \"name\": the field is not valid UTF-8"
        );
    }

    #[test]
    fn blocks_are_bounded() {
        let mut input = String::from("n\n");
        for i in 0..(BLOCK_ROWS * 2 + 10) {
            input.push_str(&format!("{i}\n"));
        }
        let mut splitter = Splitter::new(Dialect::default(), true);
        let mut blocks = Vec::new();
        splitter.push(input.as_bytes(), &mut blocks).unwrap();
        splitter.finish(&mut blocks).unwrap();
        let rows: Vec<usize> = blocks.iter().map(Block::rows).collect();
        assert_eq!(rows, vec![BLOCK_ROWS, BLOCK_ROWS, 11]);
        let last = blocks.last().unwrap();
        assert_eq!(last.line(10), (BLOCK_ROWS * 2 + 11) as u64);
        assert_eq!(last.field(10, 0), (BLOCK_ROWS * 2 + 9).to_string());
        let column: Vec<&str> = last.column(0).collect();
        assert_eq!(column.len(), 11);
        assert_eq!(column[10], last.field(10, 0));
    }

    /// A small deterministic generator, so failures reproduce.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    /// A file of `columns`-field records mixing plain and quoted fields,
    /// LF, CRLF and lone CR line ends, empty lines and, sometimes, one
    /// ragged record.
    fn random_file(rng: &mut Lcg, columns: usize) -> Vec<u8> {
        const PLAIN: [&str; 6] = ["", "a", "12", "x y", "é", "-3.5"];
        const QUOTED: [&str; 4] = ["\"a,b\"", "\"two\nlines\"", "\"say \"\"hi\"\"\"", "\"\""];
        const EMPTY: [&str; 2] = ["\n", "\r\n"];
        let mut file = Vec::new();
        for record in 0..rng.below(40) + 2 {
            let width = if record > 0 && rng.below(60) == 0 {
                columns + 1
            } else {
                columns
            };
            let fields: Vec<&str> = (0..width)
                .map(|_| match rng.below(10) {
                    0 => QUOTED[rng.below(4) as usize],
                    _ => PLAIN[rng.below(6) as usize],
                })
                .collect();
            file.extend_from_slice(fields.join(",").as_bytes());
            let end = match rng.below(20) {
                0 => "\r",
                1..=3 => "\r\n",
                _ => "\n",
            };
            file.extend_from_slice(end.as_bytes());
            if rng.below(8) == 0 {
                file.extend_from_slice(EMPTY[rng.below(2) as usize].as_bytes());
            }
        }
        file
    }

    #[test]
    fn the_quote_free_path_splits_exactly_as_csv_core() {
        let mut rng = Lcg(7);
        for case in 0..3000 {
            let columns = rng.below(4) as usize + 1;
            let file = random_file(&mut rng, columns);
            let cuts: Vec<usize> = {
                let mut cuts: Vec<usize> = (0..rng.below(3))
                    .map(|_| rng.below(file.len() as u64 + 1) as usize)
                    .collect();
                cuts.sort();
                cuts
            };
            let fast = split_with(&file, &cuts, Dialect::default(), true);
            let reference = split_with(&file, &cuts, Dialect::default(), false);
            let shown = String::from_utf8_lossy(&file);
            match (fast, reference) {
                (Ok(fast), Ok(reference)) => {
                    assert_eq!(fast, reference, "case {case}: {shown:?} cut at {cuts:?}")
                }
                (Err(fast), Err(reference)) => {
                    let line = |e: &Error| match e {
                        Error::BadCsv { line, .. } => *line,
                        other => panic!("not a CSV error: {other}"),
                    };
                    assert_eq!(
                        line(&fast),
                        line(&reference),
                        "case {case}: {shown:?} cut at {cuts:?}: {fast} / {reference}"
                    );
                }
                (fast, reference) => {
                    panic!("case {case}: {shown:?} cut at {cuts:?}: {fast:?} / {reference:?}")
                }
            }
        }
    }
}
