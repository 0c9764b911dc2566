//! The whole CSV upload path (parse, infer, widen, convert, write) on
//! arbitrary bytes; the first byte picks the dialect and chunking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lakehouse_flight::fuzzing::csv_upload(data);
});
