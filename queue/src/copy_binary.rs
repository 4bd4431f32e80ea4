//! Rows in PostgreSQL's binary `COPY` format, for the bulk enqueue path.
//!
//! Binary rather than text: nothing needs escaping (a JSON string full of backslashes and tabs
//! goes in as it is) and the server parses no numbers or timestamps. Only the handful of types
//! `bosun.jobs` takes from a client are covered.

use chrono::{DateTime, Utc};

/// OID of `text`, the element type of `tags`.
const TEXT_OID: u32 = 25;
/// `jsonb`'s binary format version.
const JSONB_VERSION: u8 = 1;
/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 UTC.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A `COPY ... FROM STDIN (FORMAT binary)` payload under construction.
pub(crate) struct CopyBuffer {
    buf: Vec<u8>,
}

impl CopyBuffer {
    /// A payload with the format's header, room reserved for about `bytes`.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + 19);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0_i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0_i32.to_be_bytes()); // header extension length
        CopyBuffer { buf }
    }

    /// Start a row of `fields` fields; the next `fields` calls fill it.
    pub(crate) fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    pub(crate) fn null(&mut self) {
        self.buf.extend_from_slice(&(-1_i32).to_be_bytes());
    }

    pub(crate) fn int2(&mut self, value: i16) {
        self.sized(&value.to_be_bytes());
    }

    pub(crate) fn int4(&mut self, value: i32) {
        self.sized(&value.to_be_bytes());
    }

    pub(crate) fn int8(&mut self, value: i64) {
        self.sized(&value.to_be_bytes());
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.sized(value.as_bytes());
    }

    pub(crate) fn timestamptz(&mut self, value: DateTime<Utc>) {
        self.int8(value.timestamp_micros() - PG_EPOCH_MICROS);
    }

    /// A `jsonb` field, serialized straight into the payload.
    pub(crate) fn jsonb(&mut self, value: &serde_json::Value) {
        let start = self.open();
        self.buf.push(JSONB_VERSION);
        serde_json::to_writer(&mut self.buf, value).expect("a JSON value always serializes");
        self.close(start);
    }

    /// A one-dimensional `text[]` without NULLs.
    pub(crate) fn text_array(&mut self, values: &[String]) {
        let start = self.open();
        let dims: i32 = i32::from(!values.is_empty());
        self.buf.extend_from_slice(&dims.to_be_bytes());
        self.buf.extend_from_slice(&0_i32.to_be_bytes()); // no NULL elements
        self.buf.extend_from_slice(&TEXT_OID.to_be_bytes());
        if dims == 1 {
            let len = i32::try_from(values.len()).expect("fewer than 2^31 tags");
            self.buf.extend_from_slice(&len.to_be_bytes());
            self.buf.extend_from_slice(&1_i32.to_be_bytes()); // lower bound
            for value in values {
                self.text(value);
            }
        }
        self.close(start);
    }

    /// The finished payload, with the trailer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
        self.buf
    }

    fn sized(&mut self, bytes: &[u8]) {
        let len = i32::try_from(bytes.len()).expect("a field below 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    /// Reserve a field's length, to be filled in by [`CopyBuffer::close`].
    fn open(&mut self) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0_i32.to_be_bytes());
        start
    }

    fn close(&mut self, start: usize) {
        let len = i32::try_from(self.buf.len() - start - 4).expect("a field below 2 GiB");
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }
}
