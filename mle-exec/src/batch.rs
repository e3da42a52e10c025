//! Columnar input batches, borrowed without copying.

use crate::error::ExecError;

/// The data of one feature column.
#[derive(Debug, Clone, Copy)]
pub enum ColumnData<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// f64 values.
    F64(&'a [f64]),
}

/// One feature column: element `row` is `data[offset + row * stride]`. A plain column has
/// `offset = 0, stride = 1`; column `j` of a row-major `[n, k]` matrix has `offset = j,
/// stride = k`. Missing values are NaN.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    /// The backing slice.
    pub data: ColumnData<'a>,
    /// Index of row 0's element.
    pub offset: usize,
    /// Distance between consecutive rows' elements.
    pub stride: usize,
}

impl Column<'_> {
    /// Value of `row` as f64 (f32 widened exactly). The caller guarantees `row < n_rows`
    /// of the batch this column was validated in.
    #[inline(always)]
    pub fn get_f64(&self, row: usize) -> f64 {
        let i = self.offset + row * self.stride;
        match self.data {
            ColumnData::F32(d) => d[i] as f64,
            ColumnData::F64(d) => d[i],
        }
    }
}

/// A batch of `n_rows` rows as feature columns, in the model's feature order.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    columns: Vec<Column<'a>>,
    n_rows: usize,
}

impl<'a> Batch<'a> {
    /// A batch from whole columns (all must have the same length).
    pub fn from_columns(columns: Vec<ColumnData<'a>>) -> Result<Self, ExecError> {
        let n_rows = columns.first().map(|c| match c {
            ColumnData::F32(d) => d.len(),
            ColumnData::F64(d) => d.len(),
        });
        let n_rows = n_rows.unwrap_or(0);
        let cols = columns
            .into_iter()
            .map(|data| Column {
                data,
                offset: 0,
                stride: 1,
            })
            .collect();
        Self::from_strided(cols, n_rows)
    }

    /// A batch viewing a row-major (C-order) `[n_rows, n_cols]` f32 matrix without copying.
    pub fn from_row_major_f32(
        data: &'a [f32],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<Self, ExecError> {
        let cols = (0..n_cols)
            .map(|j| Column {
                data: ColumnData::F32(data),
                offset: j,
                stride: n_cols,
            })
            .collect();
        Self::from_strided(cols, n_rows)
    }

    /// A batch viewing a row-major (C-order) `[n_rows, n_cols]` f64 matrix without copying.
    pub fn from_row_major_f64(
        data: &'a [f64],
        n_rows: usize,
        n_cols: usize,
    ) -> Result<Self, ExecError> {
        let cols = (0..n_cols)
            .map(|j| Column {
                data: ColumnData::F64(data),
                offset: j,
                stride: n_cols,
            })
            .collect();
        Self::from_strided(cols, n_rows)
    }

    /// A batch from strided columns; checks that every column holds `n_rows` rows.
    pub fn from_strided(columns: Vec<Column<'a>>, n_rows: usize) -> Result<Self, ExecError> {
        for (j, c) in columns.iter().enumerate() {
            let len = match c.data {
                ColumnData::F32(d) => d.len(),
                ColumnData::F64(d) => d.len(),
            };
            let last = if n_rows == 0 {
                Some(0)
            } else {
                (n_rows - 1)
                    .checked_mul(c.stride)
                    .and_then(|x| x.checked_add(c.offset))
                    .and_then(|x| x.checked_add(1))
            };
            match last {
                Some(need) if n_rows == 0 || need <= len => {}
                _ => {
                    return Err(ExecError::Input(format!(
                        "column {j} holds {len} values, too few for {n_rows} rows (offset {}, stride {})",
                        c.offset, c.stride
                    )))
                }
            }
        }
        Ok(Batch { columns, n_rows })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_columns(&self) -> usize {
        self.columns.len()
    }

    /// The columns.
    pub fn columns(&self) -> &[Column<'a>] {
        &self.columns
    }
}
