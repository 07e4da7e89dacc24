//! ergon example: scatter-gather with a timeout.
//!
//! `quote` spawns one ask per supplier and parks `choose` with
//! `when_all(...).timeout(...)`: whichever comes first — every answer, or the deadline —
//! decides the wait, once, and `choose` receives every member with its status
//! (`pending` for a supplier that missed the deadline) and output.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use ergon_core::{Consumer, Context, Hybrid, TaskError, Transaction};
use ergon_runner::Registry;
use serde::Deserialize;
use serde_json::{Value, json};

/// `{"timeout": "300ms", "suppliers": [...]}`
struct Quote {
    timeout: Duration,
    suppliers: Vec<String>,
}

impl Consumer for Quote {
    type Output = ();

    async fn process_transaction(&self, cx: &Context, tx: &Transaction) -> Result<(), TaskError> {
        let asks = self
            .suppliers
            .iter()
            .map(|supplier| {
                let id = format!("{}/ask/{supplier}", tx.id());
                let ask = json!({ "supplier": supplier, "request": tx.json::<Value>()? });
                Ok(tx.child(id, ask.to_string()).build())
            })
            .collect::<Result<Vec<_>, TaskError>>()?;
        let members = cx.spawn_all("supplier", asks).await?;
        cx.when_all(tx, members)
            .timeout(self.timeout)
            .then("choose")
            .await
    }
}

/// Each supplier answers with its price after its delay.
struct Supplier {
    delays: BTreeMap<String, Duration>,
    prices: BTreeMap<String, u64>,
}

impl Consumer for Supplier {
    type Output = Value;

    async fn process_transaction(&self, _: &Context, tx: &Transaction) -> Result<Value, TaskError> {
        let ask: Value = tx.json()?;
        let supplier = ask["supplier"].as_str().unwrap_or_default();
        let price = self
            .prices
            .get(supplier)
            .ok_or_else(|| TaskError::business(format!("no supplier `{supplier}`")))?;
        tokio::time::sleep(self.delays.get(supplier).copied().unwrap_or_default()).await;
        Ok(json!({ "supplier": supplier, "price": price }))
    }

    fn journal_output(&self, quote: &Value) -> Option<Value> {
        Some(quote.clone())
    }
}

/// The cheapest quote that arrived in time.
struct Choose;

impl Hybrid for Choose {
    async fn process_transaction(
        &self,
        _: &Context,
        tx: &Transaction,
    ) -> Result<Vec<Transaction>, TaskError> {
        let gathered: Value = tx.json()?;
        let members = gathered["members"].as_array().cloned().unwrap_or_default();
        let quotes: Vec<&Value> = members
            .iter()
            .map(|m| &m["output"])
            .filter(|o| !o.is_null())
            .collect();
        let best = quotes
            .iter()
            .min_by_key(|quote| quote["price"].as_u64().unwrap_or(u64::MAX))
            .ok_or_else(|| TaskError::business("no supplier answered in time"))?;
        let missed: Vec<&Value> = members
            .iter()
            .filter(|m| m["status"] == "pending")
            .map(|m| &m["id"])
            .collect();
        let decision = json!({
            "request": gathered["previous_task_id"],
            "outcome": gathered["outcome"],
            "quotes": quotes.len(),
            "supplier": best["supplier"],
            "price": best["price"],
            "missed": missed,
        });
        Ok(vec![
            tx.child(format!("{}/decision", tx.id()), decision.to_string())
                .build(),
        ])
    }
}

/// The `supplier` task's settings: each supplier's delay and price.
#[derive(Deserialize)]
struct SupplierSettings {
    delays: BTreeMap<String, String>,
    prices: BTreeMap<String, u64>,
}

/// The `quote` task's settings: the wait's timeout and who is asked.
#[derive(Deserialize)]
struct QuoteSettings {
    #[serde(with = "ergon_core::policy::duration")]
    timeout: Duration,
    suppliers: Vec<String>,
}

fn main() -> ExitCode {
    ergon_runner::run(
        Registry::with_builtins()
            .consumer("quote", |cx| {
                let settings: QuoteSettings = cx.settings()?;
                Ok(Quote {
                    timeout: settings.timeout,
                    suppliers: settings.suppliers,
                })
            })
            .consumer("supplier", |cx| {
                let settings: SupplierSettings = cx.settings()?;
                let delays = settings
                    .delays
                    .into_iter()
                    .map(|(supplier, delay)| {
                        let parsed = humantime::parse_duration(&delay).map_err(|err| {
                            TaskError::business(format!("settings.delays.{supplier}: {err}"))
                        })?;
                        Ok((supplier, parsed))
                    })
                    .collect::<Result<_, TaskError>>()?;
                Ok(Supplier {
                    delays,
                    prices: settings.prices,
                })
            })
            .hybrid("choose", |_| Ok(Choose)),
    )
}
