//! Local inference: Stoa's embedded model through its own provider path (chat template,
//! queue, sampler, detokenisation, channel to the listener) against llama.cpp driven
//! directly (the same llama.cpp build, through the llama-cpp-2 bindings: a bare decode
//! loop as llama.cpp's own `llama-bench` does it), on the same GGUF with 2 threads:
//! prompt processing of ~512 tokens and generation of 128 tokens; then four chats at once
//! against one. `cargo bench --bench inference` runs Stoa's side; with `-- raw`, the bare
//! loop (a separate process: llama.cpp's backend initialises once per process). Last, the
//! prompt cache: time to first token of a conversation's 10th turn with it and without.
//! `make bench-inference` runs both and writes bench/results/inference.md.

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
const RUNS: usize = 5;

struct Run {
    prompt_tokens: u32,
    tokens: u32,
    first_token: Duration,
    total: Duration,
}

async fn generate(model: &LocalModel, id: &str, text: &str, max_tokens: u32) -> Run {
    generate_turn(
        model,
        id,
        &[PromptMessage::text(Role::User, text)],
        max_tokens,
        &mut String::new(),
    )
    .await
}

/// One answer to `messages`; its text goes to `answer`.
async fn generate_turn(
    model: &LocalModel,
    id: &str,
    messages: &[PromptMessage],
    max_tokens: u32,
    answer: &mut String,
) -> Run {
    let started = Instant::now();
    let mut stream = model
        .stream(GenerationRequest {
            model: id.to_owned(),
            messages: messages.to_vec(),
            temperature: 0.0,
            max_tokens,
            options: Default::default(),
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
            TokenEvent::Token(piece) => {
                first.get_or_insert_with(|| started.elapsed());
                answer.push_str(&piece);
            }
            TokenEvent::Done {
                prompt_tokens,
                completion_tokens,
                ..
            } => {
                run.prompt_tokens = prompt_tokens;
                run.tokens = completion_tokens;
            }
            // Plain text requests: no tool calls, refusals or log probabilities.
            _ => {}
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

/// The bare loop: decode the prompt in batches, then 128 greedy tokens one at a time.
fn raw(path: &std::path::Path, long: &str, story: &str) {
    use std::num::NonZeroU32;

    use llama_cpp_2::{
        context::params::LlamaContextParams,
        llama_backend::LlamaBackend,
        llama_batch::LlamaBatch,
        model::{LlamaModel, params::LlamaModelParams},
        sampling::LlamaSampler,
    };
    let mut backend = LlamaBackend::init().expect("backend");
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, path, &LlamaModelParams::default()).expect("model");
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(4096))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(THREADS as i32)
        .with_n_threads_batch(THREADS as i32);
    let mut ctx = model.new_context(&backend, params).expect("context");
    let mut batch = LlamaBatch::new(512, 1);
    let evaluate = |tokens: &[llama_cpp_2::token::LlamaToken],
                    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
                    batch: &mut LlamaBatch| {
        ctx.clear_kv_cache();
        for (i, chunk) in tokens.chunks(512).enumerate() {
            batch.clear();
            for (j, t) in chunk.iter().enumerate() {
                let pos = i * 512 + j;
                batch
                    .add(*t, pos as i32, &[0], pos == tokens.len() - 1)
                    .expect("batch");
            }
            ctx.decode(batch).expect("decode");
        }
        batch.n_tokens() - 1
    };
    let prompt = model.vocab().tokenize(long.as_bytes(), true, false);
    let _ = evaluate(&prompt, &mut ctx, &mut batch);
    let pp: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            let _ = evaluate(&prompt, &mut ctx, &mut batch);
            prompt.len() as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    let short = model.vocab().tokenize(story.as_bytes(), true, false);
    let tg: Vec<f64> = (0..RUNS)
        .map(|_| {
            let mut last = evaluate(&short, &mut ctx, &mut batch);
            let mut sampler = LlamaSampler::greedy();
            let started = Instant::now();
            for n in 0..128 {
                let token = sampler.sample(&ctx, last);
                batch.clear();
                batch
                    .add(token, (short.len() + n) as i32, &[0], true)
                    .expect("batch");
                ctx.decode(&mut batch).expect("decode");
                last = 0;
            }
            128.0 / started.elapsed().as_secs_f64()
        })
        .collect();
    println!("llama.cpp driven directly (the same build, no chat template), {THREADS} threads");
    println!();
    println!("| test | tokens | tok/s (median of {RUNS}) |");
    println!("| --- | ---: | ---: |");
    println!("| prompt processing | {} | {:.1} |", prompt.len(), median(pp));
    println!("| generation | 128 | {:.1} |", median(tg));
}

const LONG: &str = "The quick brown fox jumps over the lazy dog near the quiet river bank. ";
const STORY: &str = "Write a very long story about a dragon who learns to bake bread.";

#[tokio::main]
async fn main() {
    let settings = Settings::load().unwrap_or_default();
    let path = settings.chat_model_path();
    if std::env::args().any(|a| a == "raw") {
        raw(&path, &LONG.repeat(34), STORY);
        return;
    }
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
            // Every prompt evaluated in full (the prompt cache is measured on its own below).
            prompt_cache: false,
            parallel: 4,
        })
        .expect("the default model is fetched (make models)"),
    );
    let id = model.models()[0].id.clone();

    // Prompt processing: ~512 tokens in, one out; the time to the first token is the
    // prompt's evaluation (plus one decode step).
    let long = LONG.repeat(34);
    let _ = generate(&model, &id, &long, 1).await; // warm-up
    let mut pp = Vec::new();
    let mut prompt_tokens = 0;
    for _ in 0..RUNS {
        let r = generate(&model, &id, &long, 1).await;
        prompt_tokens = r.prompt_tokens;
        pp.push(f64::from(r.prompt_tokens) / r.first_token.as_secs_f64());
    }

    // Generation: 128 tokens after a short prompt (greedy; counted after the first token).
    let story = STORY;
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

    // Time to first token of a question arriving while three long answers decode, against
    // the same question on an idle model.
    let question = "What is the capital of France? Answer in one sentence.";
    let mut idle = Vec::new();
    let mut loaded = Vec::new();
    for _ in 0..RUNS {
        idle.push(generate(&model, &id, question, 1).await.first_token.as_secs_f64() * 1000.0);
        let mut drains = Vec::new();
        for _ in 0..3 {
            let mut stream = model
                .stream(GenerationRequest {
                    model: id.clone(),
                    messages: vec![PromptMessage::text(Role::User, story)],
                    temperature: 0.0,
                    max_tokens: 512,
                    options: Default::default(),
                })
                .await
                .expect("the model starts");
            stream.next().await; // decoding
            drains.push(tokio::spawn(
                async move { while stream.next().await.is_some() {} },
            ));
        }
        loaded.push(generate(&model, &id, question, 1).await.first_token.as_secs_f64() * 1000.0);
        for drain in drains {
            drain.abort(); // the streams are dropped: their sequences are freed
        }
        while model.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let (idle, loaded) = (median(idle), median(loaded));

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
    println!();
    println!("Time to first token of a short question (ms, median of {RUNS})");
    println!();
    println!("| model | ms |");
    println!("| --- | ---: |");
    println!("| idle | {idle:.1} |");
    println!(
        "| three answers decoding | {loaded:.1} ({:.2}× idle) |",
        loaded / idle
    );
    drop(model);
    prompt_cache(&path).await;
}

/// Time to first token of a conversation's 10th turn, with the prompt cache (the 9th turn
/// answered just before, as in a conversation) and without it.
async fn prompt_cache(path: &std::path::Path) {
    let load = |prompt_cache| {
        LocalModel::load(&LocalModelConfig {
            path: path.to_path_buf(),
            context_size: 4096,
            batch_size: 512,
            threads: THREADS,
            queue_capacity: 8,
            seed: 42,
            repeat_penalty: 1.1,
            prompt_cache,
            parallel: 1,
        })
        .expect("the model loads")
    };
    let (with, without) = (load(true), load(false));
    let id = with.models()[0].id.clone();
    let questions = [
        "Tell me about the history of bread.",
        "Which grains are used most?",
        "How does sourdough work?",
        "What equipment do I need at home?",
        "Give me a simple recipe.",
        "How long should it rise?",
        "Why did my loaf come out dense?",
        "How do I store bread so it stays fresh?",
        "Can I freeze the dough?",
        "Summarise the most important tips.",
    ];
    // The conversation: nine turns answered (64 tokens each), then the 10th question.
    let mut history = vec![PromptMessage::text(Role::System, "You are a helpful baker.")];
    for question in &questions[..9] {
        history.push(PromptMessage::text(Role::User, *question));
        let mut answer = String::new();
        generate_turn(&without, &id, &history, 64, &mut answer).await;
        history.push(PromptMessage::text(Role::Assistant, answer));
    }
    let ninth = history[..history.len() - 1].to_vec();
    history.push(PromptMessage::text(Role::User, questions[9]));
    let (mut cached, mut fresh, mut prompt_tokens) = (Vec::new(), Vec::new(), 0);
    for _ in 0..RUNS {
        generate_turn(&with, &id, &ninth, 64, &mut String::new()).await;
        let r = generate_turn(&with, &id, &history, 1, &mut String::new()).await;
        cached.push(r.first_token.as_secs_f64() * 1000.0);
        let r = generate_turn(&without, &id, &history, 1, &mut String::new()).await;
        fresh.push(r.first_token.as_secs_f64() * 1000.0);
        prompt_tokens = r.prompt_tokens;
    }
    let (cached, fresh) = (median(cached), median(fresh));
    println!();
    println!(
        "Prompt cache: time to first token of the 10th turn ({prompt_tokens} prompt tokens), median of {RUNS}"
    );
    println!();
    println!("| prompt cache | ms |");
    println!("| --- | ---: |");
    println!("| off (whole history evaluated) | {fresh:.1} |");
    println!(
        "| on (the 9th turn answered just before) | {cached:.1} ({:.1}× faster) |",
        fresh / cached
    );
}
