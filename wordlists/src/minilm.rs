//! The sentence encoder of the semantic layer: a BERT encoder (the shape
//! of all-MiniLM-L6-v2: 6 layers, 384 wide, 12 heads) run on the CPU, its
//! token outputs mean-pooled and scaled to length one, as
//! sentence-transformers does.
//!
//! Weights come from a `safetensors` file, kept as `f32` except the word
//! embeddings, kept in 8 bits a weight (a quarter of their memory; the
//! sentence vector moves by under 1e-3); matrix products
//! use `ndarray` (`matrixmultiply`'s SIMD kernels) on one thread. One sentence is
//! encoded at a time: a pupil's message is short, so there is no batching.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use thiserror::Error;

/// Reading the model's weights failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file is not a safetensors file.
    #[error("the model file is not a safetensors file: {0}")]
    Format(#[from] safetensors::SafeTensorError),
    /// A tensor the encoder needs is missing.
    #[error("the model lacks the tensor {0}: is it a BERT encoder?")]
    Missing(String),
    /// A tensor has another type or shape than the encoder expects.
    #[error("the model's tensor {name} is {found}, expected f32 {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// What the file holds.
        found: String,
        /// What the encoder needs.
        expected: Vec<usize>,
    },
}

/// The encoder's sizes, read from the weights.
#[derive(Debug, Clone, Copy)]
struct Dims {
    hidden: usize,
    heads: usize,
    inner: usize,
    positions: usize,
    vocab: usize,
}

#[derive(Debug)]
struct Linear {
    /// `out × in`, row-major, as PyTorch stores it.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

#[derive(Debug)]
struct Norm {
    gain: Vec<f32>,
    bias: Vec<f32>,
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// The encoder, ready to run.
#[derive(Debug)]
pub struct Encoder {
    dims: Dims,
    /// The word embeddings, a row a token, kept in 8 bits a weight with
    /// one scale a row ([`QuantizedRows`]): half the model's weights, read
    /// a row at a time.
    words: QuantizedRows,
    positions: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

const EPS: f32 = 1e-12;
/// Attention heads per layer: all-MiniLM-L6-v2 and the BERT models of its
/// family have 12.
const HEADS: usize = 12;

impl Encoder {
    /// Reads a BERT encoder from the bytes of a safetensors file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Encoder, ModelError> {
        let file = SafeTensors::deserialize(bytes)?;
        let shape = |name: &str| -> Result<Vec<usize>, ModelError> {
            file.tensor(name)
                .map(|t| t.shape().to_vec())
                .map_err(|_| ModelError::Missing(name.to_owned()))
        };
        let words_shape = shape("embeddings.word_embeddings.weight")?;
        let positions_shape = shape("embeddings.position_embeddings.weight")?;
        let inner_shape = shape("encoder.layer.0.intermediate.dense.weight")?;
        let (Some(&vocab), Some(&hidden), Some(&positions), Some(&inner)) = (
            words_shape.first(),
            words_shape.get(1),
            positions_shape.first(),
            inner_shape.first(),
        ) else {
            return Err(ModelError::Missing("a two-dimensional embedding".into()));
        };
        let mut layer_count = 0;
        while file
            .tensor(&format!(
                "encoder.layer.{layer_count}.attention.self.query.weight"
            ))
            .is_ok()
        {
            layer_count += 1;
        }
        if vocab == 0 || positions < 2 || hidden == 0 {
            return Err(ModelError::Shape {
                name: "embeddings".into(),
                found: format!("{vocab} words, {positions} positions, {hidden} wide"),
                expected: vec![1, 2, HEADS],
            });
        }
        if hidden % HEADS != 0 {
            return Err(ModelError::Shape {
                name: "embeddings.word_embeddings.weight".into(),
                found: format!("{hidden} wide"),
                expected: vec![vocab, hidden - hidden % HEADS],
            });
        }
        let heads = HEADS;
        let dims = Dims {
            hidden,
            heads,
            inner,
            positions,
            vocab,
        };
        let get = |name: &str, expected: &[usize]| read(&file, name, expected);
        let linear = |name: &str, outputs: usize, inputs: usize| -> Result<Linear, ModelError> {
            Ok(Linear {
                weight: get(&format!("{name}.weight"), &[outputs, inputs])?,
                bias: get(&format!("{name}.bias"), &[outputs])?,
                inputs,
                outputs,
            })
        };
        let norm = |name: &str| -> Result<Norm, ModelError> {
            Ok(Norm {
                gain: get(&format!("{name}.weight"), &[hidden])?,
                bias: get(&format!("{name}.bias"), &[hidden])?,
            })
        };
        let mut layers = Vec::with_capacity(layer_count);
        for l in 0..layer_count {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                query: linear(&format!("{p}.attention.self.query"), hidden, hidden)?,
                key: linear(&format!("{p}.attention.self.key"), hidden, hidden)?,
                value: linear(&format!("{p}.attention.self.value"), hidden, hidden)?,
                attention_out: linear(&format!("{p}.attention.output.dense"), hidden, hidden)?,
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(&format!("{p}.intermediate.dense"), inner, hidden)?,
                output: linear(&format!("{p}.output.dense"), hidden, inner)?,
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        if layers.is_empty() {
            return Err(ModelError::Missing("encoder.layer.0".into()));
        }
        let token_types = shape("embeddings.token_type_embeddings.weight")?;
        let token_type = get(
            "embeddings.token_type_embeddings.weight",
            &[token_types.first().copied().unwrap_or(0), hidden],
        )?;
        Ok(Encoder {
            dims,
            words: QuantizedRows::of(
                &get("embeddings.word_embeddings.weight", &[vocab, hidden])?,
                hidden,
            ),
            positions: get(
                "embeddings.position_embeddings.weight",
                &[positions, hidden],
            )?,
            token_type: token_type[..hidden].to_vec(),
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
        })
    }

    /// The width of a sentence's vector.
    pub fn width(&self) -> usize {
        self.dims.hidden
    }

    /// The most tokens one sentence may have.
    pub fn max_tokens(&self) -> usize {
        self.dims.positions
    }

    /// Rows of the word embedding table: ids must be below it.
    pub fn vocab(&self) -> usize {
        self.dims.vocab
    }

    /// Heap bytes of the weights.
    pub fn weight_bytes(&self) -> usize {
        let linear = |l: &Linear| l.weight.len() + l.bias.len();
        let norm = |n: &Norm| n.gain.len() + n.bias.len();
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                linear(&l.query)
                    + linear(&l.key)
                    + linear(&l.value)
                    + linear(&l.attention_out)
                    + norm(&l.attention_norm)
                    + linear(&l.intermediate)
                    + linear(&l.output)
                    + norm(&l.output_norm)
            })
            .sum();
        self.words.bytes()
            + 4 * (self.positions.len()
                + self.token_type.len()
                + norm(&self.embedding_norm)
                + layers)
    }

    /// The sentence vector of token `ids` (framed, at most
    /// [`Encoder::max_tokens`]; ids past the vocabulary count as 0):
    /// the mean of the last layer's outputs, of length one.
    pub fn encode(&self, ids: &[u32]) -> Vec<f32> {
        let d = self.dims;
        let n = ids.len().min(d.positions);
        let h = d.hidden;
        if n == 0 {
            return vec![0.0; h];
        }
        let mut x = vec![0.0f32; n * h];
        for (t, &id) in ids[..n].iter().enumerate() {
            let id = if (id as usize) < d.vocab {
                id as usize
            } else {
                0
            };
            let row = &mut x[t * h..(t + 1) * h];
            self.words.row_into(id, row);
            let pos = &self.positions[t * h..(t + 1) * h];
            for i in 0..h {
                row[i] += pos[i] + self.token_type[i];
            }
        }
        layer_norm(&mut x, h, &self.embedding_norm);
        let mut scratch = Scratch::new(n, d);
        for layer in &self.layers {
            self.layer(layer, &mut x, n, &mut scratch);
        }
        let mut pooled = vec![0.0f32; h];
        for row in x.chunks_exact(h) {
            for (p, v) in pooled.iter_mut().zip(row) {
                *p += v;
            }
        }
        let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-9);
        pooled.iter_mut().for_each(|v| *v /= norm);
        pooled
    }

    fn layer(&self, layer: &Layer, x: &mut [f32], n: usize, s: &mut Scratch) {
        let d = self.dims;
        let h = d.hidden;
        let head = h / d.heads;
        linear(&layer.query, x, n, &mut s.q);
        linear(&layer.key, x, n, &mut s.k);
        linear(&layer.value, x, n, &mut s.v);
        let scale = 1.0 / (head as f32).sqrt();
        s.context.iter_mut().for_each(|v| *v = 0.0);
        for hd in 0..d.heads {
            let off = hd * head;
            for i in 0..n {
                let qi = &s.q[i * h + off..i * h + off + head];
                let mut top = f32::NEG_INFINITY;
                for j in 0..n {
                    let kj = &s.k[j * h + off..j * h + off + head];
                    let dot: f32 = qi.iter().zip(kj).map(|(a, b)| a * b).sum();
                    s.scores[j] = dot * scale;
                    top = top.max(s.scores[j]);
                }
                let mut sum = 0.0;
                for score in &mut s.scores[..n] {
                    *score = (*score - top).exp();
                    sum += *score;
                }
                let out = &mut s.context[i * h + off..i * h + off + head];
                for j in 0..n {
                    let w = s.scores[j] / sum;
                    let vj = &s.v[j * h + off..j * h + off + head];
                    for (o, v) in out.iter_mut().zip(vj) {
                        *o += w * v;
                    }
                }
            }
        }
        linear(&layer.attention_out, &s.context, n, &mut s.q);
        for (xi, a) in x.iter_mut().zip(&s.q) {
            *xi += a;
        }
        layer_norm(x, h, &layer.attention_norm);
        linear(&layer.intermediate, x, n, &mut s.inner);
        s.inner.iter_mut().for_each(|v| *v = gelu(*v));
        linear(&layer.output, &s.inner, n, &mut s.q);
        for (xi, a) in x.iter_mut().zip(&s.q) {
            *xi += a;
        }
        layer_norm(x, h, &layer.output_norm);
    }
}

/// Rows of weights in 8 bits each, with a scale a row (the row's largest
/// magnitude over 127): a quarter of the memory of `f32`, at an error of
/// at most half a step a weight. Used for the word embeddings, which are
/// only ever read a row at a time.
#[derive(Debug)]
struct QuantizedRows {
    values: Vec<i8>,
    scales: Vec<f32>,
    width: usize,
}

impl QuantizedRows {
    fn of(weights: &[f32], width: usize) -> QuantizedRows {
        let mut values = Vec::with_capacity(weights.len());
        let mut scales = Vec::with_capacity(weights.len() / width.max(1));
        for row in weights.chunks_exact(width) {
            let top = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if top > 0.0 { top / 127.0 } else { 1.0 };
            scales.push(scale);
            values.extend(
                row.iter()
                    .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
            );
        }
        QuantizedRows {
            values,
            scales,
            width,
        }
    }

    /// Row `r`, written over `out`.
    fn row_into(&self, r: usize, out: &mut [f32]) {
        let scale = self.scales[r];
        let row = &self.values[r * self.width..(r + 1) * self.width];
        for (o, v) in out.iter_mut().zip(row) {
            *o = f32::from(*v) * scale;
        }
    }

    fn bytes(&self) -> usize {
        self.values.len() + 4 * self.scales.len()
    }
}

/// Buffers reused across the layers of one sentence.
struct Scratch {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    context: Vec<f32>,
    inner: Vec<f32>,
    scores: Vec<f32>,
}

impl Scratch {
    fn new(n: usize, d: Dims) -> Scratch {
        let h = n * d.hidden;
        Scratch {
            q: vec![0.0; h],
            k: vec![0.0; h],
            v: vec![0.0; h],
            context: vec![0.0; h],
            inner: vec![0.0; n * d.inner],
            scores: vec![0.0; n],
        }
    }
}

fn read(file: &SafeTensors<'_>, name: &str, expected: &[usize]) -> Result<Vec<f32>, ModelError> {
    let t = file
        .tensor(name)
        .map_err(|_| ModelError::Missing(name.to_owned()))?;
    if t.dtype() != Dtype::F32 || t.shape() != expected {
        return Err(ModelError::Shape {
            name: name.to_owned(),
            found: format!("{:?} {:?}", t.dtype(), t.shape()),
            expected: expected.to_vec(),
        });
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// `out = x · Wᵀ + b` for `n` rows of `x`.
fn linear(l: &Linear, x: &[f32], n: usize, out: &mut Vec<f32>) {
    let x = ArrayView2::from_shape((n, l.inputs), &x[..n * l.inputs]).expect("rows of the input");
    let w = ArrayView2::from_shape((l.outputs, l.inputs), &l.weight).expect("the weight's shape");
    out.clear();
    for _ in 0..n {
        out.extend_from_slice(&l.bias);
    }
    let mut y =
        ArrayViewMut2::from_shape((n, l.outputs), &mut out[..]).expect("rows of the output");
    general_mat_mul(1.0, &x, &w.t(), 1.0, &mut y);
}

fn layer_norm(x: &mut [f32], width: usize, norm: &Norm) {
    for row in x.chunks_exact_mut(width) {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let inv = 1.0 / (var + EPS).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&norm.gain).zip(&norm.bias) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// BERT's GELU, with the error function to within 1.5e-7.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// Abramowitz and Stegun 7.1.26.
fn erf(x: f32) -> f32 {
    let sign = x.signum();
    let x = x.abs() as f64;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    sign * (1.0 - poly * (-x * x).exp()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_close() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn an_empty_embedding_table_is_refused_not_indexed() {
        use safetensors::tensor::TensorView;
        let one = [0u8; 4 * 384];
        let tensors = [
            (
                "embeddings.word_embeddings.weight",
                TensorView::new(Dtype::F32, vec![0, 384], &[]).unwrap(),
            ),
            (
                "embeddings.position_embeddings.weight",
                TensorView::new(Dtype::F32, vec![1, 384], &one).unwrap(),
            ),
            (
                "encoder.layer.0.intermediate.dense.weight",
                TensorView::new(Dtype::F32, vec![1, 384], &one).unwrap(),
            ),
        ];
        let bytes = safetensors::serialize(tensors, None).unwrap();
        let err = Encoder::from_safetensors(&bytes).unwrap_err().to_string();
        assert!(err.contains("0 words"), "{err}");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            Encoder::from_safetensors(b"not a model"),
            Err(ModelError::Format(_))
        ));
    }
}
