//! How one server setting is read, layered and printed, so that `config.rs` can declare each
//! setting once (`settings!`) and get the flag, the variable, the file key, the default, the
//! merge and the `--print-config` line from that one declaration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use clap::builder::ValueParser;
use serde::{Deserialize, Deserializer};
use url::Url;

use super::{DomainList, LogFormat, ProxyList, S3WriteGuard};

/// A type a setting can have: how a flag or variable is parsed, how a TOML value (in the file,
/// or a default) is read, and how `--print-config` shows it.
pub trait SettingValue: Sized {
    fn value_parser() -> ValueParser;
    fn from_toml<'de, D: Deserializer<'de>>(value: D) -> Result<Self, D::Error>;
    fn to_toml(&self) -> toml::Value;
}

/// Types whose clap parser and serde form are already the ones users write.
macro_rules! plain_setting_values {
    ($($type:ty),* $(,)?) => {$(
        impl SettingValue for $type {
            fn value_parser() -> ValueParser {
                clap::value_parser!($type).into()
            }
            fn from_toml<'de, D: Deserializer<'de>>(value: D) -> Result<Self, D::Error> {
                <$type as Deserialize>::deserialize(value)
            }
            fn to_toml(&self) -> toml::Value {
                toml::Value::try_from(self).expect("a setting value renders as TOML")
            }
        }
    )*};
}

plain_setting_values!(
    SocketAddr,
    PathBuf,
    Url,
    String,
    u32,
    bool,
    ByteSize,
    LogFormat,
    S3WriteGuard,
    // Lists: comma-separated on the command line, an array (or such a string) in the file.
    DomainList,
    ProxyList,
);

/// Durations are written the humantime way everywhere (`90s`, `10m`, `7d`), never as numbers.
impl SettingValue for Duration {
    fn value_parser() -> ValueParser {
        ValueParser::new(humantime::parse_duration)
    }
    fn from_toml<'de, D: Deserializer<'de>>(value: D) -> Result<Self, D::Error> {
        humantime_serde::deserialize(value)
    }
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(humantime::format_duration(*self).to_string())
    }
}

/// Quantities for which zero would switch a protection off, so `check positive` refuses it.
pub trait Quantity {
    fn is_zero(&self) -> bool;
    /// What the setting must be instead, for the error message.
    const AT_LEAST: &'static str;
}

impl Quantity for Duration {
    fn is_zero(&self) -> bool {
        Duration::is_zero(self)
    }
    const AT_LEAST: &'static str = "longer than 0s";
}

impl Quantity for ByteSize {
    fn is_zero(&self) -> bool {
        self.as_u64() == 0
    }
    const AT_LEAST: &'static str = "more than 0 bytes";
}

impl Quantity for u32 {
    fn is_zero(&self) -> bool {
        *self == 0
    }
    const AT_LEAST: &'static str = "at least 1";
}

pub fn positive<T: Quantity>(name: &str, value: &T) -> anyhow::Result<()> {
    anyhow::ensure!(!value.is_zero(), "{name} must be {}", T::AT_LEAST);
    Ok(())
}

/// A default, written as it would be in the TOML file, read through the file's own parser so
/// the two can never disagree.
pub fn default_value<T: SettingValue>(name: &str, written: toml::Value) -> T {
    T::from_toml(written)
        .unwrap_or_else(|error| panic!("the default of {name} is invalid: {error}"))
}

/// A TOML literal (`"10m"`, `1000`) as a value.
pub fn toml_literal(literal: impl serde::Serialize) -> toml::Value {
    toml::Value::try_from(literal).expect("a default renders as TOML")
}

/// The `--help` line: the doc comment, then the default as users would write it.
pub fn help(doc: &[&str], default: Option<toml::Value>) -> String {
    let text = doc
        .iter()
        .map(|line| line.trim())
        .collect::<Vec<_>>()
        .join(" ");
    match default {
        None => text,
        Some(toml::Value::String(written)) if written.is_empty() => {
            format!("{text} [default: none]")
        }
        Some(toml::Value::String(written)) => format!("{text} [default: {written}]"),
        Some(written) => format!("{text} [default: {written}]"),
    }
}

/// Serde's `deserialize_with` for the file's fields: a key that is present holds a value.
pub fn from_file<'de, D: Deserializer<'de>, T: SettingValue>(
    value: D,
) -> Result<Option<T>, D::Error> {
    T::from_toml(value).map(Some)
}

/// Declares every server setting once. Each entry is
///
/// ```text
/// /// doc line(s), shown by --help
/// name: Type = <default as written in TOML>, env "ONCE_NAME" [, secret printer] [, check f]*;
/// ```
///
/// A setting without a default is optional (`Option<Type>` in [`Config`](super::Config)).
/// `secret printer` hides the variable's value in `--help` and prints the setting through
/// `printer`; each `check f` runs `f(name, &value)` when the configuration is loaded.
macro_rules! settings {
    (@written $default:literal) => { Some($crate::config::setting::toml_literal($default)) };
    (@written) => { None };

    (@secret $printer:ident) => { true };
    (@secret) => { false };

    (@type $type:ty, $default:literal) => { $type };
    (@type $type:ty) => { Option<$type> };

    (@default $name:ident $type:ty, $default:literal) => {
        $crate::config::setting::default_value::<$type>(
            stringify!($name),
            $crate::config::setting::toml_literal($default),
        )
    };
    (@default $name:ident $type:ty) => { None };

    (@pick $set:expr, $default:expr, $written:literal) => { $set.unwrap_or($default) };
    (@pick $set:expr, $default:expr) => { $set.or($default) };

    (@print $value:expr, [$printer:ident] $(, $default:literal)?) => { $printer(&$value) };
    (@print $value:expr, [] , $default:literal) => { Some($value.to_toml()) };
    (@print $value:expr, []) => { $value.as_ref().map(SettingValue::to_toml) };

    ($(
        $(#[doc = $doc:literal])*
        $name:ident : $type:ty $(= $default:literal)?, env $env:literal
        $(, secret $printer:ident)? $(, check $check:ident)*;
    )*) => {
        /// Command-line flags; each one also reads its `ONCE_*` variable. Unset ones fall back
        /// to the config file, then to the defaults documented in `docs/configuration.md`.
        #[derive(clap::Args, Debug, Clone, Default)]
        pub struct ServerArgs {
            /// TOML configuration file
            #[arg(long = "config", env = "ONCE_CONFIG")]
            pub config_file: Option<PathBuf>,
            $(
                #[arg(
                    long,
                    env = $env,
                    value_parser = <$type as $crate::config::setting::SettingValue>::value_parser(),
                    help = $crate::config::setting::help(
                        &[$($doc),*],
                        $crate::config::setting::settings!(@written $($default)?),
                    ),
                    hide_env_values = $crate::config::setting::settings!(@secret $($printer)?),
                )]
                pub $name: Option<$type>,
            )*
            /// Print the effective configuration (secrets redacted) and exit
            #[arg(long)]
            pub print_config: bool,
        }

        /// The TOML file: the same keys as the flags, in snake_case, all optional.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            $(
                #[serde(default, deserialize_with = "crate::config::setting::from_file")]
                $name: Option<$type>,
            )*
        }

        /// The effective configuration.
        #[derive(Debug, Clone)]
        pub struct Config {
            $(
                $(#[doc = $doc])*
                pub $name: $crate::config::setting::settings!(@type $type $(, $default)?),
            )*
        }

        impl Default for Config {
            fn default() -> Self {
                Self {
                    $($name: $crate::config::setting::settings!(@default $name $type $(, $default)?),)*
                }
            }
        }

        impl Config {
            /// Flags and variables (already merged by clap) over the file over the defaults.
            fn layered(args: &ServerArgs, file: FileConfig, defaults: Config) -> Config {
                Config {
                    $($name: $crate::config::setting::settings!(
                        @pick args.$name.clone().or(file.$name), defaults.$name $(, $default)?
                    ),)*
                }
            }

            /// The checks declared with the settings.
            fn check_each(&self) -> anyhow::Result<()> {
                $($($check(stringify!($name), &self.$name)?;)*)*
                Ok(())
            }
        }

        /// `--print-config`: every set value in declaration order, secrets through their
        /// printers; unset optional settings are left out.
        impl serde::Serialize for Config {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                use $crate::config::setting::SettingValue;
                let mut map = serializer.serialize_map(None)?;
                $(
                    let printed: Option<toml::Value> = $crate::config::setting::settings!(
                        @print self.$name, [$($printer)?] $(, $default)?
                    );
                    if let Some(value) = printed {
                        map.serialize_entry(stringify!($name), &value)?;
                    }
                )*
                map.end()
            }
        }
    };
}

pub(crate) use settings;
