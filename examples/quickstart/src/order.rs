//! The order model and its business rules: pure functions, no framework in sight.

use serde::{Deserialize, Serialize};

/// Currencies the shop accepts.
pub const CURRENCIES: [&str; 3] = ["EUR", "USD", "GBP"];

/// An incoming order, one per line of `orders.jsonl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    /// The shop's order id, e.g. `o-1001`.
    pub id: String,
    /// The customer's id.
    pub customer: String,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Ordered lines.
    pub items: Vec<Item>,
    /// The total the customer was shown, in minor units (cents).
    pub total_cents: i64,
}

/// One order line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stock-keeping unit.
    pub sku: String,
    /// Quantity ordered.
    pub quantity: i64,
    /// Unit price in minor units.
    pub unit_price_cents: i64,
}

/// What the task writes for an accepted order.
#[derive(Debug, Clone, Serialize)]
pub struct AcceptedOrder {
    /// The order id.
    pub order_id: String,
    /// The customer id.
    pub customer: String,
    /// Currency of `total_cents`.
    pub currency: String,
    /// Number of units over all lines.
    pub units: i64,
    /// The checked total.
    pub total_cents: i64,
}

impl Order {
    /// Checks the business rules; the error says which rule failed and why.
    pub fn check(&self, max_total_cents: i64) -> Result<AcceptedOrder, String> {
        if !CURRENCIES.contains(&self.currency.as_str()) {
            return Err(format!(
                "order {}: currency {:?} is not accepted (accepted: {})",
                self.id,
                self.currency,
                CURRENCIES.join(", ")
            ));
        }
        if self.items.is_empty() {
            return Err(format!("order {} has no items", self.id));
        }
        let mut units = 0;
        let mut computed = 0;
        for item in &self.items {
            if item.quantity <= 0 || item.unit_price_cents <= 0 {
                return Err(format!(
                    "order {}: line {} has quantity {} and unit price {}; both must be positive",
                    self.id, item.sku, item.quantity, item.unit_price_cents
                ));
            }
            units += item.quantity;
            computed += item.quantity * item.unit_price_cents;
        }
        if computed != self.total_cents {
            return Err(format!(
                "order {}: total {} does not match its lines ({computed})",
                self.id, self.total_cents
            ));
        }
        if computed > max_total_cents {
            return Err(format!(
                "order {}: total {computed} exceeds the limit of {max_total_cents} for automatic acceptance",
                self.id
            ));
        }
        Ok(AcceptedOrder {
            order_id: self.id.clone(),
            customer: self.customer.clone(),
            currency: self.currency.clone(),
            units,
            total_cents: computed,
        })
    }
}
