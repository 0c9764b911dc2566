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

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

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

/// Records of one file, row-major: every field's text and where it ends.
#[derive(Debug)]
pub struct Block {
    data: String,
    /// End offset in `data` of each field, `rows * columns` of them.
    ends: Vec<usize>,
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
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.data[start..self.ends[index]]
    }

    /// Every record's field `column`, in order: the hot path of conversion.
    pub fn column(&self, column: usize) -> impl Iterator<Item = &str> {
        let mut previous_end = 0;
        self.ends.chunks_exact(self.columns).map(move |row| {
            let start = if column == 0 {
                previous_end
            } else {
                row[column - 1]
            };
            previous_end = row[row.len() - 1];
            &self.data[start..row[column]]
        })
    }

    /// The line (from 1) a record starts on.
    pub fn line(&self, row: usize) -> u64 {
        start_line(
            self.data.as_bytes(),
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
        Block {
            data: self.data[offset..].to_string(),
            ends: self.ends[skip..].iter().map(|e| e - offset).collect(),
            end_lines: self.end_lines[1..].to_vec(),
            columns: self.columns,
        }
    }
}

/// A record's first line: its last line less the line breaks inside its
/// quoted fields.
fn start_line(data: &[u8], ends: &[usize], end_lines: &[u64], columns: usize, row: usize) -> u64 {
    let start = if row == 0 { 0 } else { ends[row * columns - 1] };
    let end = ends[(row + 1) * columns - 1];
    let inner = data[start..end].iter().filter(|b| **b == b'\n').count() as u64;
    end_lines[row] - inner
}

/// Turns a stream of byte chunks into [`Block`]s.
pub struct Splitter {
    reader: Reader,
    /// Fields per record, from the first record.
    columns: Option<usize>,
    /// Whether the first record is a header, whose fields name the
    /// columns in messages until [`Splitter::set_names`] says otherwise.
    header: bool,
    names: Vec<String>,
    /// Field bytes; `data_len` of them are used.
    data: Vec<u8>,
    data_len: usize,
    /// Field ends; `ends_len` used. Ends of the record in progress are
    /// relative to `record_start` until it completes.
    ends: Vec<usize>,
    ends_len: usize,
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
            columns: None,
            header,
            names: Vec::new(),
            data: Vec::new(),
            data_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
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
            &mut self.ends[self.ends_len..],
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
        self.reader.line().saturating_sub(inner)
    }

    fn split(&mut self, input: &[u8], out: &mut Vec<Block>) -> Result<()> {
        let mut at = 0;
        while at < input.len() {
            // Field bytes never outgrow the input they come from.
            let need = self.data_len + (input.len() - at) + 1;
            if self.data.len() < need {
                self.data.resize(need.max(self.data.len() * 2), 0);
            }
            let (result, read, written, ends) = self.reader.read_record(
                &input[at..],
                &mut self.data[self.data_len..],
                &mut self.ends[self.ends_len..],
            );
            at += read;
            self.data_len += written;
            self.ends_len += ends;
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
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
                ReadRecordResult::Record => {
                    let last = input[..at].last().copied();
                    self.end_record(last)?;
                    if self.rows() >= BLOCK_ROWS || self.data_len >= BLOCK_BYTES {
                        out.push(self.take_block()?);
                    }
                }
            }
        }
        Ok(())
    }

    fn end_record(&mut self, last_byte: Option<u8>) -> Result<()> {
        let fields = self.record_fields;
        let expected = *self.columns.get_or_insert(fields);
        let end_line = match last_byte {
            Some(b'\n') => self.reader.line() - 1,
            _ => self.reader.line(),
        };
        if fields != expected {
            let inner = self.data[self.record_start..self.data_len]
                .iter()
                .filter(|b| **b == b'\n')
                .count() as u64;
            return Err(self.ragged(Some(fields), expected, end_line - inner));
        }
        let first = self.ends_len - fields;
        for end in &mut self.ends[first..self.ends_len] {
            *end += self.record_start;
        }
        if self.end_lines.is_empty() && self.names.is_empty() && self.header {
            let mut start = self.record_start;
            for &end in &self.ends[first..self.ends_len] {
                self.names
                    .push(String::from_utf8_lossy(&self.data[start..end]).into_owned());
                start = end;
            }
        }
        self.end_lines.push(end_line);
        self.record_start = self.data_len;
        self.record_fields = 0;
        if self.ends.len() < self.ends_len + expected + 1 {
            let len = self.ends.len();
            self.ends
                .resize((len * 2).max(self.ends_len + expected + 1), 0);
        }
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
        let ends = self.ends[..self.rows() * columns].to_vec();
        let end_lines = std::mem::take(&mut self.end_lines);
        self.data_len = 0;
        self.ends_len = 0;
        self.record_start = 0;
        let data = String::from_utf8(data).map_err(|e| {
            let bad = e.utf8_error().valid_up_to();
            let index = ends.partition_point(|end| *end <= bad);
            let (row, column) = (index / columns, index % columns);
            Error::BadCsv {
                line: start_line(e.as_bytes(), &ends, &end_lines, columns, row),
                column: Some(self.column_name(column)),
                detail: "the field is not valid UTF-8".into(),
            }
        })?;
        Ok(Block {
            data,
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
        let mut splitter = Splitter::new(dialect, true);
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
                .contains("line 3: the record has more than 2 fields"),
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
}
