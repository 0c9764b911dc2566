//! Decoding of what Flight clients send: commands, statement tickets and
//! CSV upload options, on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lakehouse_flight::fuzzing::flight_message(data);
});
