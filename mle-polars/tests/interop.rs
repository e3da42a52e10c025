//! The crossing between polars-arrow and arrow-rs: zero copy, nulls kept, every accepted
//! dtype through `mle-arrow`'s input policy, and the output types back as Polars dtypes.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType as ArrowType, Field as ArrowField, Float64Type};
use mle_polars::interop::{arrow_rs_to_series, arrow_type, polars_type, series_to_arrow_rs};
use polars::prelude::*;

#[test]
fn a_float_column_in_one_chunk_crosses_without_a_copy() {
    let s = Series::new("x".into(), &[1.5f64, 2.5, 3.5]);
    let a = series_to_arrow_rs(&s).unwrap();
    let ours = a.as_primitive::<Float64Type>().values();
    let theirs = s.f64().unwrap().cont_slice().unwrap();
    assert_eq!(
        ours.as_ptr(),
        theirs.as_ptr(),
        "the buffer is shared, not copied"
    );
    assert_eq!(&ours[..], theirs);
}

#[test]
fn nulls_booleans_and_several_chunks_cross_with_their_values() {
    let mut s = Series::new("x".into(), &[Some(1i32), None, Some(3)]);
    s.append(&Series::new("x".into(), &[Some(4i32)])).unwrap();
    assert_eq!(s.n_chunks(), 2);
    let a = series_to_arrow_rs(&s).unwrap();
    assert_eq!((a.len(), a.null_count()), (4, 1));
    assert_eq!(a.data_type(), &ArrowType::Int32);
    let b = series_to_arrow_rs(&Series::new("b".into(), &[Some(true), Some(false), None])).unwrap();
    assert_eq!((b.data_type(), b.null_count()), (&ArrowType::Boolean, 1));
    let b = b.as_boolean();
    assert!(b.value(0) && !b.value(1));
}

#[test]
fn polars_dtypes_map_to_their_logical_arrow_types() {
    assert_eq!(arrow_type(&DataType::Float32), Some(ArrowType::Float32));
    assert_eq!(arrow_type(&DataType::Boolean), Some(ArrowType::Boolean));
    assert_eq!(arrow_type(&DataType::Null), Some(ArrowType::Null));
    assert_eq!(arrow_type(&DataType::Date), Some(ArrowType::Date32));
    for refused in [
        DataType::Date,
        DataType::String,
        DataType::List(Box::new(DataType::Float64)),
    ] {
        let t = arrow_type(&refused).unwrap();
        assert!(
            !mle_arrow::is_supported_type(&t),
            "{refused} is not a feature"
        );
    }
}

#[test]
fn output_types_come_back_as_polars_dtypes() {
    let proba = ArrowType::FixedSizeList(
        Arc::new(ArrowField::new("item", ArrowType::Float64, false)),
        3,
    );
    assert_eq!(
        polars_type(&proba).unwrap(),
        DataType::Array(Box::new(DataType::Float64), 3)
    );
    assert_eq!(polars_type(&ArrowType::Utf8).unwrap(), DataType::String);
    assert_eq!(polars_type(&ArrowType::Int64).unwrap(), DataType::Int64);
    let labels: arrow::array::ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["a", "b"]));
    let s = arrow_rs_to_series("label".into(), &labels).unwrap();
    assert_eq!(s.dtype(), &DataType::String);
    assert_eq!(s.name().as_str(), "label");
    let ca = s.str().unwrap();
    let v: Vec<Option<&str>> = (0..ca.len()).map(|i| ca.get(i)).collect();
    assert_eq!(v, vec![Some("a"), Some("b")]);
}
