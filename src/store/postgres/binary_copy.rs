//! Rows read with `COPY (SELECT …) TO STDOUT (FORMAT binary)`: for a report's 100,000
//! conversations, sqlx's row-by-row hand-over costs several times what PostgreSQL takes
//! to send them, and an array per column costs the server twice its scan. sqlx hands
//! over a COPY's bytes as they come; this reads the format
//! (<https://www.postgresql.org/docs/current/sql-copy.html>, "Binary Format"): a
//! signature, flags and a header extension, then per row its field count and each field
//! as a length (-1: NULL) and the value in the type's binary form, then -1.

use crate::store::{StoreError, StoreResult};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

fn malformed(what: &str) -> StoreError {
    StoreError::fatal(format!("PostgreSQL's binary COPY data: {what}"))
}

/// The fields of each row of `data`, which must have `N` of them.
pub struct BinaryRows<'a, const N: usize> {
    data: &'a [u8],
    done: bool,
}

impl<'a, const N: usize> BinaryRows<'a, N> {
    pub fn new(data: &'a [u8]) -> StoreResult<BinaryRows<'a, N>> {
        let rest = data.strip_prefix(SIGNATURE).ok_or_else(|| malformed("no signature"))?;
        let mut rows = BinaryRows {
            data: rest,
            done: false,
        };
        let _flags = rows.bytes(4)?;
        let extension = i32::from_be_bytes(rows.array()?);
        rows.bytes(usize::try_from(extension).map_err(|_| malformed("a negative header extension"))?)?;
        Ok(rows)
    }

    fn bytes(&mut self, len: usize) -> StoreResult<&'a [u8]> {
        if self.data.len() < len {
            return Err(malformed("cut short"));
        }
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(taken)
    }

    fn array<const M: usize>(&mut self) -> StoreResult<[u8; M]> {
        self.bytes(M)?.try_into().map_err(|_| malformed("cut short"))
    }

    fn row(&mut self) -> StoreResult<Option<[Option<&'a [u8]>; N]>> {
        let count = i16::from_be_bytes(self.array()?);
        if count == -1 {
            return Ok(None);
        }
        if usize::try_from(count).ok() != Some(N) {
            return Err(malformed(&format!("a row of {count} fields, not {N}")));
        }
        let mut fields = [None; N];
        for field in &mut fields {
            let len = i32::from_be_bytes(self.array()?);
            if len >= 0 {
                *field = Some(self.bytes(len as usize)?);
            }
        }
        Ok(Some(fields))
    }
}

impl<'a, const N: usize> Iterator for BinaryRows<'a, N> {
    type Item = StoreResult<[Option<&'a [u8]>; N]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.row() {
            Ok(Some(fields)) => Some(Ok(fields)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// A `BIGINT` field.
pub fn int8(field: Option<&[u8]>) -> StoreResult<Option<i64>> {
    field
        .map(|bytes| {
            <[u8; 8]>::try_from(bytes)
                .map(i64::from_be_bytes)
                .map_err(|_| malformed("a BIGINT not of 8 bytes"))
        })
        .transpose()
}

/// A `TEXT` field.
pub fn text(field: Option<&[u8]>) -> StoreResult<Option<&str>> {
    field
        .map(|bytes| std::str::from_utf8(bytes).map_err(|_| malformed("a TEXT not in UTF-8")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut data = SIGNATURE.to_vec();
        data.extend(0i32.to_be_bytes());
        data.extend(4i32.to_be_bytes());
        data.extend(b"ext!");
        for row in rows {
            data.extend((row.len() as i16).to_be_bytes());
            for field in *row {
                match field {
                    Some(bytes) => {
                        data.extend((bytes.len() as i32).to_be_bytes());
                        data.extend(*bytes);
                    }
                    None => data.extend((-1i32).to_be_bytes()),
                }
            }
        }
        data.extend((-1i16).to_be_bytes());
        data
    }

    #[test]
    fn rows_are_read_field_by_field_with_nulls() {
        let seven = 7i64.to_be_bytes();
        let data = copy(&[&[Some(&seven), None, Some(b"en")], &[None, None, None]]);
        let rows: Vec<_> = BinaryRows::<3>::new(&data)
            .unwrap()
            .collect::<StoreResult<_>>()
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(int8(rows[0][0]).unwrap(), Some(7));
        assert_eq!(int8(rows[0][1]).unwrap(), None);
        assert_eq!(text(rows[0][2]).unwrap(), Some("en"));
        assert_eq!(rows[1], [None, None, None]);
    }

    #[test]
    fn malformed_data_is_an_error_not_a_panic() {
        let seven = 7i64.to_be_bytes();
        let data = copy(&[&[Some(&seven), None, Some(b"en")]]);
        assert!(BinaryRows::<3>::new(b"PGCOPY").is_err());
        let wrong_count: Vec<_> = BinaryRows::<2>::new(&data).unwrap().collect();
        assert!(wrong_count[0].is_err());
        for cut in 0..data.len() {
            let failed = match BinaryRows::<3>::new(&data[..cut]) {
                Err(_) => true,
                Ok(mut rows) => rows.any(|row| row.is_err()),
            };
            assert!(failed, "cut at {cut}");
        }
        assert!(int8(Some(b"short")).is_err());
        assert!(text(Some(b"\xff")).is_err());
    }
}
