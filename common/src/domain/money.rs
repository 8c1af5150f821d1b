//! Money as integer minor units. Floats never touch an amount: a payment of
//! "50.00" so'm is 5000 tiyin from the moment it is parsed until it is shown.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Currencies paygate settles in, with the exponent of their minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Currency {
    /// Iranian rial. bitpay.ir/medogram amounts are whole rials, so the minor unit is the rial.
    Irr,
    /// Uzbek so'm; Atmos counts in tiyin (1/100 so'm).
    Uzs,
}

impl Currency {
    pub fn code(self) -> &'static str {
        match self {
            Currency::Irr => "IRR",
            Currency::Uzs => "UZS",
        }
    }

    /// Digits after the decimal point of the major unit.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Irr => 0,
            Currency::Uzs => 2,
        }
    }

    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        match code.to_ascii_uppercase().as_str() {
            "IRR" => Ok(Currency::Irr),
            "UZS" => Ok(Currency::Uzs),
            _ => Err(MoneyError::UnknownCurrency),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount is larger than paygate accepts ({max} minor units)", max = Amount::MAX_MINOR)]
    TooLarge,
    #[error("amount must be a decimal number such as \"50.00\"")]
    NotADecimal,
    #[error("amount has more decimal places than the currency allows")]
    TooPrecise,
    #[error("unknown currency")]
    UnknownCurrency,
}

/// A positive amount in minor units (rial for IRR, tiyin for UZS).
///
/// The upper bound keeps every amount exactly representable as a JSON number in
/// JavaScript (below 2^53) and far above any real single payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

impl Amount {
    pub const MAX_MINOR: i64 = 1_000_000_000_000_000;

    pub fn from_minor(minor: i64) -> Result<Self, MoneyError> {
        if minor <= 0 {
            Err(MoneyError::NotPositive)
        } else if minor > Self::MAX_MINOR {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Amount(minor))
        }
    }

    pub fn minor(self) -> i64 {
        self.0
    }

    /// Parses a decimal string in major units ("50", "50.5", "50.00") exactly.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(MoneyError::NotPositive);
        }
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (text.contains('.') && !digits(frac)) {
            return Err(MoneyError::NotADecimal);
        }
        let exp = currency.exponent() as usize;
        if frac.len() > exp {
            return Err(MoneyError::TooPrecise);
        }
        // Too many digits cannot be a real amount; refuse before arithmetic can overflow.
        if whole.trim_start_matches('0').len() > 18 {
            return Err(MoneyError::TooLarge);
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::TooLarge)?;
        let mut frac_padded = frac.to_string();
        while frac_padded.len() < exp {
            frac_padded.push('0');
        }
        let frac: i64 = if frac_padded.is_empty() {
            0
        } else {
            frac_padded.parse().map_err(|_| MoneyError::NotADecimal)?
        };
        let minor = whole
            .checked_mul(10_i64.pow(exp as u32))
            .and_then(|m| m.checked_add(frac))
            .ok_or(MoneyError::TooLarge)?;
        Self::from_minor(minor)
    }

    /// Formats in major units with exactly the currency's decimals ("50.00").
    pub fn to_decimal_string(self, currency: Currency) -> String {
        let exp = currency.exponent();
        if exp == 0 {
            return self.0.to_string();
        }
        let scale = 10_i64.pow(exp);
        format!(
            "{}.{:0width$}",
            self.0 / scale,
            self.0 % scale,
            width = exp as usize
        )
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_must_be_positive_and_bounded() {
        assert_eq!(Amount::from_minor(0), Err(MoneyError::NotPositive));
        assert_eq!(Amount::from_minor(-5), Err(MoneyError::NotPositive));
        assert_eq!(
            Amount::from_minor(Amount::MAX_MINOR + 1),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(Amount::from_minor(1).unwrap().minor(), 1);
    }

    #[test]
    fn decimal_parsing_is_exact() {
        let uzs = Currency::Uzs;
        assert_eq!(Amount::parse_decimal("50.00", uzs).unwrap().minor(), 5000);
        assert_eq!(Amount::parse_decimal("50", uzs).unwrap().minor(), 5000);
        assert_eq!(Amount::parse_decimal("50.5", uzs).unwrap().minor(), 5050);
        assert_eq!(Amount::parse_decimal("0.01", uzs).unwrap().minor(), 1);
        assert_eq!(
            Amount::parse_decimal("0.1", uzs).unwrap().minor() * 3,
            Amount::parse_decimal("0.30", uzs).unwrap().minor()
        );
        assert_eq!(
            Amount::parse_decimal("1.001", uzs),
            Err(MoneyError::TooPrecise)
        );
        assert_eq!(
            Amount::parse_decimal("-1.00", uzs),
            Err(MoneyError::NotPositive)
        );
        assert_eq!(
            Amount::parse_decimal("0.00", uzs),
            Err(MoneyError::NotPositive)
        );
        for bad in [
            "", "abc", "1e5", "1,00", ".5", "5.", " . ", "+5", "0x10", "NaN",
        ] {
            assert_eq!(
                Amount::parse_decimal(bad, uzs),
                Err(MoneyError::NotADecimal),
                "{bad}"
            );
        }
        assert_eq!(
            Amount::parse_decimal("99999999999999999999999", uzs),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Amount::parse_decimal("10000000000000.01", uzs),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Amount::parse_decimal("100.5", Currency::Irr),
            Err(MoneyError::TooPrecise)
        );
    }

    #[test]
    fn decimal_formatting_round_trips() {
        for text in ["50.00", "0.01", "123456.78", "1.50"] {
            let a = Amount::parse_decimal(text, Currency::Uzs).unwrap();
            assert_eq!(a.to_decimal_string(Currency::Uzs), text);
        }
        let rial = Amount::from_minor(100000).unwrap();
        assert_eq!(rial.to_decimal_string(Currency::Irr), "100000");
    }
}
