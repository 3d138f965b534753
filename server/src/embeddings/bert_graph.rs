//! all-MiniLM-L6-v2 as an ONNX graph, built in memory from the installed safetensors weights, so ONNX Runtime
//! can run it: no converted file exists in the registries, and ONNX Runtime's kernels embed about twice as
//! fast as candle's BERT on these CPUs (see `LocalEmbeddings`).
//!
//! The graph is BERT's encoder followed by sentence-transformers' pooling, so it maps token ids and their
//! attention mask (`[batch, tokens]`, int64) straight to unit-length sentence vectors (`[batch, 384]`):
//! embeddings (word + position + token type 0), layer norm; per layer self-attention and a GELU feed-forward
//! block, each with a residual connection and layer norm; then the mean over real tokens, L2-normalised.
//! Padding positions (mask 0) are kept out of attention by a large negative score and out of the mean.

use std::collections::HashMap;

use safetensors::{Dtype, SafeTensors};

use super::onnx_proto::{AttributeProto, FLOAT, GraphProto, INT64, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto};

/// ONNX operator set 20: the first with an exact `Gelu`; ONNX Runtime 1.31 runs it.
const OPSET: i64 = 20;
/// ONNX IR version 9 goes with operator set 20.
const IR_VERSION: i64 = 9;
/// What BERT adds to the attention score of a padding position (softmax then gives it ~0 weight).
const MASKED_SCORE: f32 = -10_000.0;

pub const INPUT_IDS: &str = "input_ids";
pub const ATTENTION_MASK: &str = "attention_mask";
pub const OUTPUT: &str = "sentence_embedding";

/// The parts of a Hugging Face BERT `config.json` the graph depends on.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
}

fn default_activation() -> String {
    "gelu".to_owned()
}

/// The serialized ONNX model for the BERT weights in `safetensors` (the file's bytes).
pub fn sentence_embedding_model(safetensors: &[u8], config: &BertConfig) -> Result<Vec<u8>, String> {
    if config.hidden_act != "gelu" {
        return Err(format!("activation {:?} is not supported (only BERT's exact gelu)", config.hidden_act));
    }
    if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
        return Err(format!("hidden size {} does not split into {} heads", config.hidden_size, config.num_attention_heads));
    }
    let weights = SafeTensors::deserialize(safetensors).map_err(|e| format!("not a safetensors file: {e}"))?;
    let mut graph = Builder::new(&weights);
    graph.encoder_and_pooling(config)?;
    Ok(graph.finish().to_bytes())
}

struct Builder<'a> {
    weights: &'a SafeTensors<'a>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    constants: HashMap<String, String>,
}

impl<'a> Builder<'a> {
    fn new(weights: &'a SafeTensors<'a>) -> Self {
        Self { weights, nodes: Vec::new(), initializers: Vec::new(), constants: HashMap::new() }
    }

    fn encoder_and_pooling(&mut self, config: &BertConfig) -> Result<(), String> {
        let heads = i64::try_from(config.num_attention_heads).map_err(|e| e.to_string())?;
        let hidden = i64::try_from(config.hidden_size).map_err(|e| e.to_string())?;
        let head_size = hidden / heads;
        let epsilon = config.layer_norm_eps as f32;

        // Embeddings: the first `tokens` rows of the position table, and token type 0 for every token.
        let word_table = self.weight("embeddings.word_embeddings.weight")?;
        let words = self.node("Gather", &[&word_table, INPUT_IDS], vec![]);
        let tokens = self.node("Shape", &[INPUT_IDS], vec![AttributeProto::int("start", 1), AttributeProto::int("end", 2)]);
        let (zero, axis0) = (self.ints(&[0]), self.ints(&[0]));
        let position_table = self.weight("embeddings.position_embeddings.weight")?;
        let positions = self.node("Slice", &[&position_table, &zero, &tokens, &axis0], vec![]);
        let token_type = self.first_row("embeddings.token_type_embeddings.weight")?;
        let summed = self.node("Add", &[&words, &positions], vec![]);
        let summed = self.node("Add", &[&summed, &token_type], vec![]);
        let mut hidden_states = self.layer_norm(&summed, "embeddings.LayerNorm", epsilon)?;

        // 0 for a real token, MASKED_SCORE for padding, shaped [batch, 1, 1, tokens] to add to every head's scores.
        let mask = self.node("Cast", &[ATTENTION_MASK], vec![AttributeProto::int("to", i64::from(FLOAT))]);
        let one = self.float(1.0);
        let masked = self.float(MASKED_SCORE);
        let padding = self.node("Sub", &[&one, &mask], vec![]);
        let score_mask = self.node("Mul", &[&padding, &masked], vec![]);
        let axes_1_2 = self.ints(&[1, 2]);
        let score_mask = self.node("Unsqueeze", &[&score_mask, &axes_1_2], vec![]);

        let split_heads = self.ints(&[0, 0, heads, head_size]);
        let join_heads = self.ints(&[0, 0, hidden]);
        let scale = self.float(1.0 / (head_size as f32).sqrt());
        for layer in 0..config.num_hidden_layers {
            let prefix = format!("encoder.layer.{layer}");
            let per_head = |graph: &mut Self, name: &str, perm: &[i64]| -> Result<String, String> {
                let projected = graph.linear(&hidden_states, &format!("{prefix}.attention.self.{name}"))?;
                let split = graph.node("Reshape", &[&projected, &split_heads], vec![]);
                Ok(graph.node("Transpose", &[&split], vec![AttributeProto::ints("perm", perm)]))
            };
            let query = per_head(self, "query", &[0, 2, 1, 3])?;
            // Keys come transposed ([batch, heads, head size, tokens]) so query x key is one MatMul.
            let key = per_head(self, "key", &[0, 2, 3, 1])?;
            let value = per_head(self, "value", &[0, 2, 1, 3])?;
            let scores = self.node("MatMul", &[&query, &key], vec![]);
            let scores = self.node("Mul", &[&scores, &scale], vec![]);
            let scores = self.node("Add", &[&scores, &score_mask], vec![]);
            let weights = self.node("Softmax", &[&scores], vec![AttributeProto::int("axis", -1)]);
            let context = self.node("MatMul", &[&weights, &value], vec![]);
            let context = self.node("Transpose", &[&context], vec![AttributeProto::ints("perm", &[0, 2, 1, 3])]);
            let context = self.node("Reshape", &[&context, &join_heads], vec![]);
            let attended = self.linear(&context, &format!("{prefix}.attention.output.dense"))?;
            let residual = self.node("Add", &[&attended, &hidden_states], vec![]);
            let attended = self.layer_norm(&residual, &format!("{prefix}.attention.output.LayerNorm"), epsilon)?;

            let expanded = self.linear(&attended, &format!("{prefix}.intermediate.dense"))?;
            let activated = self.node("Gelu", &[&expanded], vec![]);
            let contracted = self.linear(&activated, &format!("{prefix}.output.dense"))?;
            let residual = self.node("Add", &[&contracted, &attended], vec![]);
            hidden_states = self.layer_norm(&residual, &format!("{prefix}.output.LayerNorm"), epsilon)?;
        }

        // Mean over real tokens, then unit length.
        let axis2 = self.ints(&[2]);
        let axis1 = self.ints(&[1]);
        let token_mask = self.node("Unsqueeze", &[&mask, &axis2], vec![]);
        let kept = self.node("Mul", &[&hidden_states, &token_mask], vec![]);
        let summed = self.node("ReduceSum", &[&kept, &axis1], vec![AttributeProto::int("keepdims", 0)]);
        let counted = self.node("ReduceSum", &[&token_mask, &axis1], vec![AttributeProto::int("keepdims", 0)]);
        let at_least_one = self.float(1e-9);
        let counted = self.node("Max", &[&counted, &at_least_one], vec![]);
        let mean = self.node("Div", &[&summed, &counted], vec![]);
        let norm = self.node("ReduceL2", &[&mean, &axis1], vec![AttributeProto::int("keepdims", 1)]);
        let tiny = self.float(1e-12);
        let norm = self.node("Max", &[&norm, &tiny], vec![]);
        self.nodes.push(NodeProto {
            input: vec![mean, norm],
            output: vec![OUTPUT.to_owned()],
            name: Some(OUTPUT.to_owned()),
            op_type: Some("Div".to_owned()),
            attribute: vec![],
        });
        Ok(())
    }

    /// `x W^T + b` for a PyTorch linear layer (weight stored `[out, in]`). The transpose is a node on a
    /// constant: ONNX Runtime folds it once when the session is created.
    fn linear(&mut self, input: &str, prefix: &str) -> Result<String, String> {
        let stored = self.weight(&format!("{prefix}.weight"))?;
        let weight = self.node("Transpose", &[&stored], vec![AttributeProto::ints("perm", &[1, 0])]);
        let bias = self.weight(&format!("{prefix}.bias"))?;
        let product = self.node("MatMul", &[input, &weight], vec![]);
        Ok(self.node("Add", &[&product, &bias], vec![]))
    }

    fn layer_norm(&mut self, input: &str, prefix: &str, epsilon: f32) -> Result<String, String> {
        let gamma = self.weight(&format!("{prefix}.weight"))?;
        let beta = self.weight(&format!("{prefix}.bias"))?;
        Ok(self.node(
            "LayerNormalization",
            &[input, &gamma, &beta],
            vec![AttributeProto::int("axis", -1), AttributeProto::float("epsilon", epsilon)],
        ))
    }

    fn node(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = format!("{op_type}_{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|&name| name.to_owned()).collect(),
            output: vec![output.clone()],
            name: Some(output.clone()),
            op_type: Some(op_type.to_owned()),
            attribute,
        });
        output
    }

    /// A stored f32 tensor as it is, under its own name.
    fn weight(&mut self, name: &str) -> Result<String, String> {
        let (shape, data) = self.f32_tensor(name)?;
        Ok(self.add_initializer(name, FLOAT, &shape, data.to_vec()))
    }

    /// Row 0 of a stored 2-D tensor (token type 0's embedding).
    fn first_row(&mut self, name: &str) -> Result<String, String> {
        let (shape, data) = self.f32_tensor(name)?;
        let [_, columns] = shape[..] else { return Err(format!("{name} has shape {shape:?}, expected 2 dimensions")) };
        let row = data.get(..columns * 4).ok_or_else(|| format!("{name} holds fewer bytes than its shape says"))?;
        Ok(self.add_initializer(&format!("{name}.row0"), FLOAT, &[columns], row.to_vec()))
    }

    fn f32_tensor(&self, name: &str) -> Result<(Vec<usize>, &'a [u8]), String> {
        let tensor = self.weights.tensor(name).map_err(|e| format!("the weights have no {name}: {e}"))?;
        if tensor.dtype() != Dtype::F32 {
            return Err(format!("{name} is {:?}, expected F32", tensor.dtype()));
        }
        Ok((tensor.shape().to_vec(), tensor.data()))
    }

    fn ints(&mut self, values: &[i64]) -> String {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.constant(format!("ints{values:?}"), INT64, &[values.len()], bytes)
    }

    /// A scalar.
    fn float(&mut self, value: f32) -> String {
        self.constant(format!("float{value:e}"), FLOAT, &[], value.to_le_bytes().to_vec())
    }

    /// A small constant, shared by every node that uses the same value.
    fn constant(&mut self, key: String, data_type: i32, dims: &[usize], bytes: Vec<u8>) -> String {
        if let Some(name) = self.constants.get(&key) {
            return name.clone();
        }
        let name = format!("constant_{}", self.constants.len());
        self.initializers.push(tensor(&name, data_type, dims, bytes));
        self.constants.insert(key, name.clone());
        name
    }

    fn add_initializer(&mut self, name: &str, data_type: i32, dims: &[usize], bytes: Vec<u8>) -> String {
        self.initializers.push(tensor(name, data_type, dims, bytes));
        name.to_owned()
    }

    fn finish(self) -> ModelProto {
        let graph = GraphProto {
            node: self.nodes,
            name: Some("all-MiniLM-L6-v2 sentence embedding".to_owned()),
            initializer: self.initializers,
            input: vec![
                ValueInfoProto::tensor(INPUT_IDS, INT64, &["batch", "tokens"]),
                ValueInfoProto::tensor(ATTENTION_MASK, INT64, &["batch", "tokens"]),
            ],
            output: vec![ValueInfoProto::tensor(OUTPUT, FLOAT, &["batch", "dimensions"])],
        };
        ModelProto {
            ir_version: Some(IR_VERSION),
            producer_name: Some("parlance".to_owned()),
            graph: Some(graph),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        }
    }
}

fn tensor(name: &str, data_type: i32, dims: &[usize], bytes: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type),
        name: Some(name.to_owned()),
        raw_data: Some(bytes),
    }
}
