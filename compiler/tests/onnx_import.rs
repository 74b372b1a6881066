//! ONNX frontend: the real models import, verify their shapes, and print; bad inputs get clear
//! errors.

use prost::Message;
use std::path::{Path, PathBuf};
use trainer_compiler::frontend::onnx::proto::{
    AttributeProto, AttributeType, DataLocation, DataType, Dimension, DimensionValue, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    TypeProtoTensor, ValueInfoProto,
};
use trainer_compiler::frontend::onnx::{import, ImportOptions, OnnxError, OnnxModel};
use trainer_compiler::frontend::{self, FrontendOptions};
use trainer_compiler::ir::Module;
use trainer_compiler::text::print_custom;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name)
}

fn load(name: &str, batch: Option<usize>) -> Module {
    let opts = FrontendOptions { batch, seed: 0 };
    frontend::load(&data(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `(op name, result type)` of every op in the module, in order.
fn ops(m: &Module) -> Vec<(String, String)> {
    m.all_ops()
        .into_iter()
        .map(|o| {
            let op = m.op(o);
            let ty = op
                .results()
                .first()
                .map_or(String::new(), |&r| m.ty(r).to_string());
            (op.name().to_string(), ty)
        })
        .collect()
}

fn count(m: &Module, name: &str) -> usize {
    ops(m).iter().filter(|(n, _)| n == name).count()
}

#[test]
fn digits_mlp_snapshot() {
    insta::assert_snapshot!(print_custom(&load("digits_mlp.onnx", None)));
}

#[test]
fn digits_cnn_training_bn_snapshot() {
    let m = load("digits_cnn.onnx", None);
    assert_eq!(count(&m, "tg.batch_norm"), 2);
    insta::assert_snapshot!(print_custom(&m));
}

#[test]
fn digits_cnn_dynamo_external_data_snapshot() {
    let m = load("digits_cnn_dynamo.onnx", None);
    let fc = &m.weights["fc.weight"];
    assert_eq!(fc.shape, vec![10, 512]);
    // The weights come from the external file: compare with its bytes.
    let raw = std::fs::read(data("digits_cnn_dynamo.onnx.data")).unwrap();
    let floats: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let conv = &m.weights["f.0.weight"].data;
    assert!(floats.windows(conv.len()).any(|w| w == conv.as_slice()));
    insta::assert_snapshot!(print_custom(&m));
}

#[test]
fn mobilenet_v2_structure_snapshot() {
    let m = load("mobilenet_v2_cifar10.onnx", None);
    assert_eq!(count(&m, "tg.conv"), 52);
    assert_eq!(count(&m, "tg.clip"), 35);
    assert_eq!(count(&m, "tg.batch_norm"), 52);
    // Identity-aliased BN parameters become parameters of their own.
    assert_eq!(count(&m, "tg.param"), 52 + 4 * 52 + 2);
    insta::assert_snapshot!(print_custom(&m));
}

#[test]
fn graph_only_resnet18_gets_seeded_he_weights() {
    let m = load("resnet18_imagenet_graph.onnx", None);
    let convs: Vec<String> = ops(&m)
        .into_iter()
        .filter(|(n, _)| n == "tg.conv")
        .map(|(_, t)| t)
        .collect();
    assert_eq!(convs.len(), 20);
    assert_eq!(convs[0], "tensor<1x64x112x112xf32>");
    assert_eq!(convs[19], "tensor<1x512x7x7xf32>");
    assert_eq!(m.weights.len(), 102);
    let w = &m.weights["layer1.0.conv1.weight"].data;
    let var = w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len() as f64;
    assert!((var - 2.0 / 576.0).abs() < 0.1 * 2.0 / 576.0, "He variance {var}");
    assert!(m.weights["bn1.weight"].data.iter().all(|&x| x == 1.0));
    assert!(m.weights["bn1.running_mean"].data.iter().all(|&x| x == 0.0));
    assert!(m.weights["fc.bias"].data.iter().all(|&x| x == 0.0));
    // Deterministic for a seed, different for another.
    let again = load("resnet18_imagenet_graph.onnx", None);
    assert_eq!(again.weights, m.weights);
    let other = frontend::load(
        &data("resnet18_imagenet_graph.onnx"),
        &FrontendOptions { batch: None, seed: 1 },
    )
    .unwrap();
    assert_ne!(other.weights["conv1.weight"], m.weights["conv1.weight"]);
}

#[test]
fn graph_only_vgg11_bn_imports() {
    let m = load("vgg11_bn_graph.onnx", Some(2));
    assert_eq!(count(&m, "tg.conv"), 8);
    assert_eq!(count(&m, "tg.dropout"), 2);
    assert_eq!(count(&m, "tg.max_pool"), 5);
    assert_eq!(ops(&m).iter().rev().nth(1).unwrap().1, "tensor<2x10xf32>");
}

#[test]
fn batch_override_rebatches_constant_reshape() {
    let m = load("digits_cnn_dynamo.onnx", Some(32));
    let text = print_custom(&m);
    assert!(text.contains("tg.reshape %6 {shape = [32, 512]}"), "{text}");
    assert!(text.contains("-> tensor<32x10xf32>"), "{text}");
}

#[test]
fn resnet18_cifar10_from_shared() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/models/resnet18_cifar10.onnx");
    if !path.exists() {
        eprintln!("skipping: {} not present", path.display());
        return;
    }
    let m = frontend::load(&path, &FrontendOptions::default()).unwrap();
    let all = ops(&m);
    assert_eq!(count(&m, "tg.conv"), 20);
    assert_eq!(count(&m, "tg.batch_norm"), 20);
    assert!(
        !all.iter().any(|(n, _)| n == "tg.max_pool"),
        "CIFAR stem has no max-pool"
    );
    assert_eq!(
        all.iter().find(|(n, _)| n == "tg.conv").unwrap().1,
        "tensor<8x64x32x32xf32>"
    );
    assert_eq!(all.iter().rev().nth(1).unwrap().1, "tensor<8x10xf32>");
    assert_eq!(m.weights["conv1.weight"].shape, vec![64, 3, 3, 3]);
    // The hand-written `.tg` ResNet-18 has the same op sequence and shapes.
    let tg_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/resnet18.tg");
    let tg = frontend::load(
        &tg_path,
        &FrontendOptions {
            batch: Some(8),
            seed: 0,
        },
    )
    .unwrap();
    let strip = |v: Vec<(String, String)>| v.into_iter().filter(|(n, _)| n != "tg.param").collect::<Vec<_>>();
    assert_eq!(strip(ops(&tg)), strip(all));
}

// ----- bad inputs -----

fn tensor_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(DimensionValue::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn model(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    out: &str,
    inits: Vec<TensorProto>,
    opset: i64,
) -> Vec<u8> {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            input: inputs,
            output: vec![tensor_info(out, &[])],
            initializer: inits,
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn import_bytes(bytes: &[u8], dir: Option<&Path>) -> Result<Module, OnnxError> {
    import(&OnnxModel::decode(bytes, dir)?, &ImportOptions::default())
}

#[test]
fn truncated_and_garbage_protobuf_are_decode_errors() {
    let bytes = std::fs::read(data("digits_mlp.onnx")).unwrap();
    for cut in [1, 100, 1000, bytes.len() / 2, bytes.len() - 1] {
        let e = import_bytes(&bytes[..cut], None).unwrap_err();
        assert!(matches!(e, OnnxError::Decode(_)), "cut {cut}: {e}");
        assert!(e.to_string().starts_with("malformed ONNX protobuf"), "{e}");
    }
    let e = import_bytes(&[0xff; 64], None).unwrap_err();
    assert!(matches!(e, OnnxError::Decode(_)), "{e}");
    let e = import_bytes(&[], None).unwrap_err();
    assert!(e.to_string().contains("default-domain"), "{e}");
}

#[test]
fn unknown_op_names_op_node_and_opset() {
    let bytes = model(
        vec![node("FooBar", "weird_node", &["x"], &["y"], vec![])],
        vec![tensor_info("x", &[1, 4])],
        "y",
        vec![],
        17,
    );
    let e = import_bytes(&bytes, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "unsupported ONNX operator `FooBar` (node `weird_node`, opset 17)"
    );
}

#[test]
fn unsupported_opset_is_rejected() {
    let bytes = model(
        vec![node("Relu", "r", &["x"], &["y"], vec![])],
        vec![tensor_info("x", &[1, 4])],
        "y",
        vec![],
        7,
    );
    let e = import_bytes(&bytes, None).unwrap_err().to_string();
    assert!(e.contains("opset 7 is outside the supported range 9..="), "{e}");
}

#[test]
fn wrong_rank_is_a_node_error() {
    let w = TensorProto {
        name: "w".into(),
        dims: vec![2, 4, 1, 1],
        data_type: DataType::Float as i32,
        float_data: vec![0.5; 8],
        ..Default::default()
    };
    let bytes = model(
        vec![node("Conv", "conv0", &["x", "w"], &["y"], vec![])],
        vec![tensor_info("x", &[1, 4])],
        "y",
        vec![w],
        17,
    );
    let e = import_bytes(&bytes, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "node `conv0` (Conv): expected a rank-4 operand, found tensor<1x4xf32>"
    );
}

#[test]
fn shape_mismatch_is_a_node_error() {
    let w = TensorProto {
        name: "w".into(),
        dims: vec![3, 5],
        data_type: DataType::Float as i32,
        float_data: vec![0.5; 15],
        ..Default::default()
    };
    let bytes = model(
        vec![node("Gemm", "fc", &["x", "w"], &["y"], vec![])],
        vec![tensor_info("x", &[1, 4])],
        "y",
        vec![w],
        17,
    );
    let e = import_bytes(&bytes, None).unwrap_err().to_string();
    assert!(e.starts_with("node `fc` (Gemm): inner dimensions differ"), "{e}");
}

#[test]
fn dangling_values_are_reported() {
    let bytes = model(
        vec![node("Relu", "r", &["nowhere"], &["y"], vec![])],
        vec![tensor_info("x", &[1, 4])],
        "y",
        vec![],
        17,
    );
    let e = import_bytes(&bytes, None).unwrap_err().to_string();
    assert_eq!(e, "value `nowhere` used by node `r` (Relu) is not defined");
    let bytes = model(
        vec![node("Relu", "r", &["x"], &["y"], vec![])],
        vec![tensor_info("x", &[1, 4])],
        "missing",
        vec![],
        17,
    );
    let e = import_bytes(&bytes, None).unwrap_err().to_string();
    assert_eq!(e, "value `missing` used by graph output `missing` is not defined");
}

#[test]
fn bad_attribute_type_and_bad_tensor_sizes() {
    let attr = AttributeProto {
        name: "axis".into(),
        r#type: AttributeType::Float as i32,
        f: 1.0,
        ..Default::default()
    };
    let bytes = model(
        vec![node("Flatten", "f", &["x"], &["y"], vec![attr])],
        vec![tensor_info("x", &[1, 4])],
        "y",
        vec![],
        17,
    );
    let e = import_bytes(&bytes, None).unwrap_err().to_string();
    assert_eq!(
        e,
        "node `f` (Flatten): attribute `axis` should be Int, found Float"
    );
    let w = TensorProto {
        name: "w".into(),
        dims: vec![4, 4],
        data_type: DataType::Float as i32,
        raw_data: vec![0; 10],
        ..Default::default()
    };
    let e = import_bytes(&model(vec![], vec![], "w", vec![w], 17), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "tensor `w`: Float tensor of shape [4, 4] needs 64 bytes, found 10"
    );
    let huge = TensorProto {
        name: "h".into(),
        dims: vec![i64::MAX, 4],
        data_type: DataType::Float as i32,
        ..Default::default()
    };
    let e = import_bytes(&model(vec![], vec![], "h", vec![huge], 17), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid dimensions"), "{e}");
}

#[test]
fn f16_and_int64_initializers_decode() {
    let half_bits = [
        half::f16::from_f32(1.5).to_bits() as i32,
        half::f16::from_f32(-2.0).to_bits() as i32,
    ];
    let w = TensorProto {
        name: "w".into(),
        dims: vec![2],
        data_type: DataType::Float16 as i32,
        int32_data: half_bits.to_vec(),
        ..Default::default()
    };
    let shape = TensorProto {
        name: "s".into(),
        dims: vec![2],
        data_type: DataType::Int64 as i32,
        int64_data: vec![1, -1],
        ..Default::default()
    };
    let nodes = vec![
        node("Reshape", "r", &["x", "s"], &["y"], vec![]),
        node("Add", "a", &["y", "w"], &["z"], vec![]),
    ];
    let m = import_bytes(
        &model(nodes, vec![tensor_info("x", &[2, 1])], "z", vec![w, shape], 17),
        None,
    )
    .unwrap();
    assert_eq!(m.weights["w"].data, vec![1.5, -2.0]);
    assert!(print_custom(&m).contains("tg.reshape %arg0 {shape = [1, 2]}"));
}

fn external_model(location: &str, offset: &str, length: &str) -> Vec<u8> {
    let entry = |k: &str, v: &str| StringStringEntryProto {
        key: k.into(),
        value: v.into(),
    };
    let w = TensorProto {
        name: "w".into(),
        dims: vec![2],
        data_type: DataType::Float as i32,
        data_location: DataLocation::External as i32,
        external_data: vec![
            entry("location", location),
            entry("offset", offset),
            entry("length", length),
        ],
        ..Default::default()
    };
    model(
        vec![node("Add", "a", &["x", "w"], &["y"], vec![])],
        vec![tensor_info("x", &[2])],
        "y",
        vec![w],
        17,
    )
}

#[test]
fn external_data_is_validated() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_external");
    std::fs::create_dir_all(&dir).unwrap();
    let floats: Vec<u8> = [0.0f32, 1.0, 2.0, 3.0]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    std::fs::write(dir.join("w.bin"), floats).unwrap();
    let m = import_bytes(&external_model("w.bin", "8", "8"), Some(&dir)).unwrap();
    assert_eq!(m.weights["w"].data, vec![2.0, 3.0]);
    let e = import_bytes(&external_model("w.bin", "12", "8"), Some(&dir))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "tensor `w`: external data range offset 12 length 8 exceeds `w.bin` (16 bytes)"
    );
    let e = import_bytes(&external_model("w.bin", "18446744073709551615", "8"), Some(&dir))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exceeds"), "{e}");
    for bad in ["../w.bin", "/etc/passwd", "sub/../../w.bin"] {
        let e = import_bytes(&external_model(bad, "0", "8"), Some(&dir))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("must be a relative path inside the model's directory"),
            "{bad}: {e}"
        );
    }
    let e = import_bytes(&external_model("absent.bin", "0", "8"), Some(&dir))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot read"), "{e}");
    let e = import_bytes(&external_model("w.bin", "0", "8"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs the model's file path"), "{e}");
}

#[test]
fn dynamo_model_without_its_data_file_fails_cleanly() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_no_data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(data("digits_cnn_dynamo.onnx"), dir.join("m.onnx")).unwrap();
    let e = frontend::load(&dir.join("m.onnx"), &FrontendOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read") && e.contains("digits_cnn_dynamo.onnx.data"),
        "{e}"
    );
}
