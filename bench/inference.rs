//! Local inference: Stoa's embedded model through its own provider path (chat template,
//! queue, sampler, detokenisation), measured like llama.cpp's `llama-bench` measures the
//! same GGUF: prompt processing of ~512 tokens and generation of 128 tokens, 2 threads;
//! then four chats at once against one. `make bench-inference` runs this and
//! `bench/llama-bench.sh` in one go and writes bench/results/inference.md.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use stoa::{
    api::types::Role,
    server::{
        config::Settings,
        llm::{
            ChatProvider, GenerationRequest, PromptMessage, TokenEvent,
            local::{LocalModel, LocalModelConfig},
        },
    },
};

const THREADS: usize = 2;
const RUNS: usize = 3;

struct Run {
    prompt_tokens: u32,
    tokens: u32,
    first_token: Duration,
    total: Duration,
}

async fn generate(model: &LocalModel, id: &str, text: &str, max_tokens: u32) -> Run {
    let started = Instant::now();
    let mut stream = model
        .stream(GenerationRequest {
            model: id.to_owned(),
            messages: vec![PromptMessage {
                role: Role::User,
                content: text.to_owned(),
            }],
            temperature: 0.0,
            max_tokens,
        })
        .await
        .expect("the model starts");
    let mut first = None;
    let mut run = Run {
        prompt_tokens: 0,
        tokens: 0,
        first_token: Duration::ZERO,
        total: Duration::ZERO,
    };
    while let Some(event) = stream.next().await {
        match event.expect("no error") {
            TokenEvent::Token(_) => {
                first.get_or_insert_with(|| started.elapsed());
            }
            TokenEvent::Done {
                prompt_tokens,
                completion_tokens,
                ..
            } => {
                run.prompt_tokens = prompt_tokens;
                run.tokens = completion_tokens;
            }
        }
    }
    run.first_token = first.unwrap_or_default();
    run.total = started.elapsed();
    run
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let settings = Settings::load().unwrap_or_default();
    let path = settings.chat_model_path();
    let model = Arc::new(
        LocalModel::load(&LocalModelConfig {
            path: path.clone(),
            context_size: 4096,
            batch_size: 512,
            threads: THREADS,
            queue_capacity: 8,
            seed: 42,
            // As llama-bench: no repetition penalty in the way.
            repeat_penalty: 1.0,
        })
        .expect("the default model is fetched (make models)"),
    );
    let id = model.models()[0].id.clone();

    // Prompt processing: ~512 tokens in, one out; the time to the first token is the
    // prompt's evaluation (plus one decode step).
    let long = "The quick brown fox jumps over the lazy dog near the quiet river bank. ".repeat(34);
    let _ = generate(&model, &id, &long, 1).await; // warm-up
    let mut pp = Vec::new();
    let mut prompt_tokens = 0;
    for _ in 0..RUNS {
        let r = generate(&model, &id, &long, 1).await;
        prompt_tokens = r.prompt_tokens;
        pp.push(f64::from(r.prompt_tokens) / r.first_token.as_secs_f64());
    }

    // Generation: 128 tokens after a short prompt (greedy; counted after the first token).
    let story = "Write a very long story about a dragon who learns to bake bread.";
    let mut tg = Vec::new();
    let mut generated = 0;
    for _ in 0..RUNS {
        let r = generate(&model, &id, story, 128).await;
        generated = r.tokens;
        tg.push(f64::from(r.tokens.saturating_sub(1)) / (r.total - r.first_token).as_secs_f64());
    }

    // Four chats at once against one, 64 tokens each: aggregate tokens per second.
    let one = {
        let started = Instant::now();
        let r = generate(&model, &id, story, 64).await;
        f64::from(r.tokens) / started.elapsed().as_secs_f64()
    };
    let four = {
        let started = Instant::now();
        let runs = futures::future::join_all((0..4).map(|_| generate(&model, &id, story, 64))).await;
        f64::from(runs.iter().map(|r| r.tokens).sum::<u32>()) / started.elapsed().as_secs_f64()
    };

    println!(
        "Stoa (embedded llama.cpp through its provider path), {THREADS} threads, {}",
        path.display()
    );
    println!();
    println!("| test | tokens | tok/s (median of {RUNS}) |");
    println!("| --- | ---: | ---: |");
    println!("| prompt processing | {prompt_tokens} | {:.1} |", median(pp));
    println!("| generation | {generated} | {:.1} |", median(tg));
    println!("| one chat, 64 tokens | 64 | {one:.1} |");
    println!(
        "| four chats at once, aggregate | 4 × 64 | {four:.1} ({:.2}× one chat) |",
        four / one
    );
}
