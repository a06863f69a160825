//! `/documents`: upload files (picker or drag and drop, several at once, with an optional
//! collection), see each one's progress until it is ready, delete them.

use leptos::{ev, html, prelude::*, task::spawn_local};

use crate::api::{
    ApiError,
    documents::{
        AddUrl, DocumentMetadata, DocumentStatus, DocumentView, UploadOutcome, add_document_url,
        cancel_document, delete_document, list_documents, upload_documents,
    },
    validation::decimal,
};

fn status_line(d: &DocumentView) -> String {
    let line = match d.status {
        DocumentStatus::Failed if d.error.as_deref() == Some("cancelled") => "cancelled".into(),
        DocumentStatus::Queued => "queued".into(),
        DocumentStatus::Extracting if d.progress_total > 0 => {
            let page = (d.progress_done + 1).min(d.progress_total);
            format!("extracting text… OCR page {page}/{}", d.progress_total)
        }
        DocumentStatus::Extracting => "extracting text…".into(),
        DocumentStatus::Embedding => format!("embedding {}/{}", d.progress_done, d.progress_total),
        DocumentStatus::Ready => format!(
            "ready · {} passage{}",
            d.chunk_count,
            if d.chunk_count == 1 { "" } else { "s" }
        ),
        DocumentStatus::Failed => format!("failed: {}", d.error.clone().unwrap_or_default()),
    };
    match (&d.replaces, d.status.is_final()) {
        (Some(_), false) => line + " · replaces the earlier version when ready",
        _ => line,
    }
}

#[component]
pub fn DocumentsPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let documents = Resource::new(move || version.get(), |_| list_documents());
    let outcomes = RwSignal::new(Vec::<UploadOutcome>::new());

    // While a document is still being processed, look again every second.
    Effect::new(move |_| {
        let pending = documents
            .get()
            .and_then(|r| r.ok())
            .is_some_and(|list| list.iter().any(|d| !d.status.is_final()));
        if pending {
            set_timeout(
                move || version.update(|v| *v += 1),
                std::time::Duration::from_millis(1000),
            );
        }
    });

    view! {
        <section class="documents">
            <h1>"Documents"</h1>
            <p class="muted">
                "Upload documents (PDF and scans, images, Office, OpenDocument, RTF, EPUB, HTML, Markdown, text, e-mail, data, code) or add a web page by its address; every chat then draws on them and cites them. A file uploaded again under its name replaces the earlier version once read."
            </p>
            <UploadForm outcomes version />
            <AddUrlForm outcomes version />
            <UploadOutcomes outcomes />
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match documents.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No documents yet."</p> }.into_any(),
                        Ok(list) => view! { <DocumentList list version /> }.into_any(),
                        Err(e) => view! { <p class="error">{e.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The form's files with the metadata first (the server reads it before the files), or
/// why the metadata is refused.
fn upload_data(
    form: &web_sys::HtmlFormElement,
    collection: &str,
) -> Option<Result<web_sys::FormData, ApiError>> {
    let data = web_sys::FormData::new_with_form(form).ok()?;
    let metadata = DocumentMetadata {
        collection: (!collection.trim().is_empty()).then(|| collection.trim().to_owned()),
        ..DocumentMetadata::default()
    };
    if let Err(e) = metadata.check() {
        return Some(Err(e));
    }
    data.delete("metadata");
    let files = data.get_all("file");
    data.delete("file");
    let _ = data.append_with_str("metadata", &serde_json::to_string(&metadata).unwrap_or_default());
    for f in files.iter() {
        if let Ok(blob) = leptos::wasm_bindgen::JsCast::dyn_into::<web_sys::File>(f) {
            let _ = data.append_with_blob_and_filename("file", &blob, &blob.name());
        }
    }
    Some(Ok(data))
}

/// Files by picker or drag and drop, with an optional collection.
#[component]
fn UploadForm(outcomes: RwSignal<Vec<UploadOutcome>>, version: RwSignal<u32>) -> impl IntoView {
    let form_error = RwSignal::new(None::<ApiError>);
    let uploading = RwSignal::new(false);
    let form = NodeRef::<html::Form>::new();
    let file_input = NodeRef::<html::Input>::new();
    let collection = RwSignal::new(String::new());
    let dragging = RwSignal::new(false);

    let submit = move || {
        let Some(form) = form.get_untracked() else { return };
        let data = match upload_data(&form, &collection.get_untracked()) {
            None => return,
            Some(Err(e)) => return form_error.set(Some(e)),
            Some(Ok(data)) => data,
        };
        uploading.set(true);
        form_error.set(None);
        spawn_local(async move {
            match upload_documents(data.into()).await {
                Ok(result) => outcomes.set(result),
                Err(e) => form_error.set(Some(e)),
            }
            uploading.set(false);
            if let Some(input) = file_input.get_untracked() {
                input.set_value("");
            }
            version.update(|v| *v += 1);
        });
    };

    let on_drop = move |e: ev::DragEvent| {
        e.prevent_default();
        dragging.set(false);
        let (Some(transfer), Some(input)) = (e.data_transfer(), file_input.get_untracked()) else {
            return;
        };
        input.set_files(transfer.files().as_ref());
        submit();
    };

    view! {
        <form
            class="upload"
            class:dragging=move || dragging.get()
            node_ref=form
            on:submit=move |e: ev::SubmitEvent| {
                e.prevent_default();
                submit();
            }
            on:dragover=move |e: ev::DragEvent| {
                e.prevent_default();
                dragging.set(true);
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=on_drop
        >
            <UploadFields file_input collection />
            <button type="submit" class="send" disabled=move || uploading.get()>
                {move || if uploading.get() { "Uploading…" } else { "Upload" }}
            </button>
            {move || {
                form_error.get().map(|e| view! { <p class="field-error" role="alert" data-field-error=e.field.clone().unwrap_or_default()>{e.message}</p> })
            }}
        </form>
    }
}

/// The upload form's inputs: the files and the collection they go into.
#[component]
fn UploadFields(file_input: NodeRef<html::Input>, collection: RwSignal<String>) -> impl IntoView {
    view! {
            <label class="drop-zone" for="file">
                "Drop files here, or choose them"
                <input
                    id="file"
                    name="file"
                    type="file"
                    multiple
                    node_ref=file_input
                />
            </label>
            <label>
                "Collection (optional) "
                <input
                    id="collection"
                    type="text"
                    placeholder="e.g. handbook"
                    prop:value=move || collection.get()
                    on:input=move |e| collection.set(event_target_value(&e))
                />
            </label>
    }
}

/// A web page (or any supported file) by its address, fetched by the server.
#[component]
fn AddUrlForm(outcomes: RwSignal<Vec<UploadOutcome>>, version: RwSignal<u32>) -> impl IntoView {
    let input = NodeRef::<html::Input>::new();
    let adding = RwSignal::new(false);
    let form_error = RwSignal::new(None::<ApiError>);
    let submit = move |e: ev::SubmitEvent| {
        e.prevent_default();
        let Some(input) = input.get_untracked() else {
            return;
        };
        // The field is `required` and of type url; the server checks the rest.
        let request = AddUrl {
            url: input.value().trim().to_owned(),
            metadata: None,
        };
        adding.set(true);
        form_error.set(None);
        spawn_local(async move {
            match add_document_url(request).await {
                Ok(outcome) => {
                    if outcome.error.is_none() {
                        input.set_value("");
                    }
                    outcomes.set(vec![outcome]);
                }
                Err(e) => form_error.set(Some(e)),
            }
            adding.set(false);
            version.update(|v| *v += 1);
        });
    };
    view! {
        <form class="add-url" on:submit=submit>
            <label for="url">"Add from URL "</label>
            <input
                id="url"
                name="url"
                type="url"
                required
                placeholder="https://example.org/handbook.html"
                node_ref=input
            />
            <button type="submit" class="send" disabled=move || adding.get()>
                {move || if adding.get() { "Fetching…" } else { "Add" }}
            </button>
            {move || {
                form_error.get().map(|e| view! { <p class="field-error" role="alert" data-field-error=e.field.clone().unwrap_or_default()>{e.message}</p> })
            }}
        </form>
    }
}

/// What became of each file of the last upload.
#[component]
fn UploadOutcomes(outcomes: RwSignal<Vec<UploadOutcome>>) -> impl IntoView {
    let outcome = |o: UploadOutcome| {
        let (class, text) = match (&o.error, o.duplicate) {
            (Some(e), _) => ("outcome error", e.message.clone()),
            (None, true) => ("outcome", "already uploaded; kept the earlier copy".to_owned()),
            (None, false) if o.document.as_ref().is_some_and(|d| d.version > 1) => (
                "outcome",
                "accepted as a new version; it replaces the earlier one once it is read".to_owned(),
            ),
            (None, false) => ("outcome", "accepted".to_owned()),
        };
        view! {
            <li class=class data-file=o.file_name.clone()>
                <strong>{o.file_name.clone()}</strong>
                ": "
                {text}
            </li>
        }
    };
    view! {
        <ul class="upload-outcomes">
            {move || outcomes.get().into_iter().map(outcome).collect_view()}
        </ul>
    }
}

#[component]
fn DocumentList(list: Vec<DocumentView>, version: RwSignal<u32>) -> impl IntoView {
    view! {
        <table class="document-list">
            <thead>
                <tr>
                    <th>"Document"</th>
                    <th>"Collection"</th>
                    <th>"Status"</th>
                    <th></th>
                </tr>
            </thead>
            <tbody>
                {list
                    .into_iter()
                    .map(|d| {
                        let id = d.id.clone();
                        let cancel_id = d.id.clone();
                        let status = status_line(&d);
                        let unfinished = !d.status.is_final();
                        let version_label = (d.version > 1).then(|| format!(" · version {}", d.version));
                        view! {
                            <tr class="document" data-status=d.status.as_str() data-file=d.file_name.clone()>
                                <td>
                                    <span class="doc-title">{d.title.clone()}</span>
                                    <span class="muted">
                                        {format!(" {} · {} KB", d.file_name, decimal(d.size_bytes as f64 / 1024.0, 1))}
                                        {version_label}
                                    </span>
                                </td>
                                <td>{d.collection.clone().unwrap_or_else(|| "—".into())}</td>
                                <td class="doc-status">{status}</td>
                                <td>
                                    {unfinished
                                        .then(|| {
                                            let title = d.title.clone();
                                            view! {
                                                <button
                                                    type="button"
                                                    class="cancel"
                                                    aria-label=format!("Cancel {title}")
                                                    on:click=move |_| {
                                                        let id = cancel_id.clone();
                                                        spawn_local(async move {
                                                            let _ = cancel_document(id).await;
                                                            version.update(|v| *v += 1);
                                                        });
                                                    }
                                                >
                                                    "Cancel"
                                                </button>
                                            }
                                        })}
                                    <button
                                        type="button"
                                        class="delete"
                                        aria-label=format!("Delete {}", d.title)
                                        on:click=move |_| {
                                            let id = id.clone();
                                            spawn_local(async move {
                                                let _ = delete_document(id).await;
                                                version.update(|v| *v += 1);
                                            });
                                        }
                                    >
                                        "Delete"
                                    </button>
                                </td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// Which collections a conversation's answers may draw on (none ticked: all documents).
#[component]
pub fn SourcesPicker(conversation_id: String, selected: Vec<String>) -> impl IntoView {
    let collections = Resource::new(|| (), |_| crate::api::documents::list_collections());
    let chosen = RwSignal::new(selected);
    let error = RwSignal::new(None::<String>);
    let conversation_id = StoredValue::new(conversation_id);
    let toggle = move |id: String, on: bool| {
        chosen.update(|c| {
            c.retain(|x| *x != id);
            if on {
                c.push(id);
            }
        });
        let ids = chosen.get_untracked();
        spawn_local(async move {
            let result =
                crate::api::documents::set_conversation_collections(conversation_id.get_value(), ids).await;
            error.set(result.err().map(|e| e.message));
        });
    };
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let list = collections.await.unwrap_or_default();
                (!list.is_empty())
                    .then(|| {
                        view! {
                            <details class="sources-picker">
                                <summary>
                                    {move || {
                                        let n = chosen.with(Vec::len);
                                        if n == 0 {
                                            "Sources: all documents".to_owned()
                                        } else {
                                            format!("Sources: {n} collection(s)")
                                        }
                                    }}
                                </summary>
                                {list
                                    .into_iter()
                                    .map(|c| {
                                        let id = c.id.clone();
                                        let checked = {
                                            let id = id.clone();
                                            move || chosen.with(|s| s.contains(&id))
                                        };
                                        view! {
                                            <label class="check">
                                                <input
                                                    type="checkbox"
                                                    name="collection"
                                                    value=c.id.clone()
                                                    prop:checked=checked
                                                    on:change=move |e| toggle(id.clone(), event_target_checked(&e))
                                                />
                                                {format!(" {} ({} documents)", c.name, c.document_count)}
                                            </label>
                                        }
                                    })
                                    .collect_view()}
                                {move || error.get().map(|e| view! { <p class="field-error">{e}</p> })}
                            </details>
                        }
                    })
            })}
        </Suspense>
    }
}
