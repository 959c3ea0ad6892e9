//! Closed enums whose values are label values and JSON fields (phases, reasons, states),
//! declared once: [`label_enum!`](crate::label_enum) turns one list of
//! `Variant => "label"` pairs into the enum, its `ALL`, `as_str`, parsing, `Display`,
//! `Serialize` and `Deserialize`, so a variant cannot be missing from any of them.

use std::fmt;

/// A string that is none of an enum's labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownLabel {
    /// What the enum names, e.g. `reason`.
    pub what: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} `{}`", self.what, self.value)
    }
}

impl std::error::Error for UnknownLabel {}

/// Declares a label enum from one list of `Variant => "label"` pairs (doc comments and
/// attributes allowed on each):
///
/// ```ignore
/// label_enum! {
///     /// A probe phase.
///     pub enum Phase("phase") {
///         Dns => "dns",
///         Connect => "connect",
///     }
/// }
/// ```
///
/// The enum derives `Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord` (order and
/// discriminants follow the declaration) and gets `ALL` (every variant, in declaration
/// order), `as_str`, `from_label`, `FromStr`, `Display`, `Serialize` and `Deserialize`.
/// Every view is generated from the one list, so none can miss a variant, and two
/// variants with the same label do not compile.
/// An unknown value fails to deserialize with ``unknown phase `x` ``; written
/// `("severity", serde)`, with serde's own ``unknown variant `x`, expected `a` or `b` ``
/// instead, for enums that serde's derive used to read.
#[macro_export]
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal $(, $style:ident)?) {
            $($(#[$vmeta:meta])* $variant:ident => $label:literal),+ $(,)?
        }
    ) => {
        $crate::label_enum!(@define [$(#[$meta])*] $vis $name $what [$($(#[$vmeta])* $variant => $label),+]);

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let label = <::std::string::String as ::serde::Deserialize>::deserialize(d)?;
                $crate::label_enum!(@unknown label D $($style)? [$($label),+])
            }
        }
    };
    // What an unknown label gives: our `unknown reason `x``, or serde's own wording.
    (@unknown $label:ident $d:ident [$($l:literal),+]) => {
        $label.parse().map_err(<$d::Error as ::serde::de::Error>::custom)
    };
    (@unknown $label:ident $d:ident serde [$($l:literal),+]) => {
        Self::from_label(&$label)
            .ok_or_else(|| <$d::Error as ::serde::de::Error>::unknown_variant(&$label, &[$($l),+]))
    };
    (@unit $variant:ident) => {
        ()
    };
    (@define [$(#[$meta:meta])*] $vis:vis $name:ident $what:literal
        [$($(#[$vmeta:meta])* $variant:ident => $label:literal),+]) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($crate::label_enum!(@unit $variant)),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }

            /// The variant whose label is `label`.
            // Two variants with one label would make an arm unreachable: refused here.
            #[deny(unreachable_patterns)]
            pub fn from_label(label: &str) -> ::std::option::Option<Self> {
                match label {
                    $($label => ::std::option::Option::Some($name::$variant),)+
                    _ => ::std::option::Option::None,
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::util::labels::UnknownLabel;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Self::from_label(s)
                    .ok_or_else(|| $crate::util::labels::UnknownLabel { what: $what, value: s.to_owned() })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::label_enum! {
        /// A test enum.
        enum Colour("colour") {
            /// The first.
            Red => "red",
            DarkGreen => "dark_green",
            Blue => "blue",
        }
    }

    crate::label_enum! {
        enum Level("level", serde) {
            Low => "low",
            High => "high",
        }
    }

    #[test]
    fn one_declaration_gives_every_view_of_the_enum() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::DarkGreen, Colour::Blue]);
        assert_eq!(Colour::DarkGreen as usize, 1);
        assert!(Colour::Red < Colour::Blue);
        for c in Colour::ALL {
            assert_eq!(c.as_str().parse::<Colour>(), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), c);
        }
        assert_eq!(Colour::from_label("green"), None);
        assert_eq!("green".parse::<Colour>().unwrap_err().to_string(), "unknown colour `green`");
        assert_eq!(
            serde_json::from_str::<Colour>("\"green\"").unwrap_err().to_string(),
            "unknown colour `green`"
        );

        assert_eq!(Level::ALL, [Level::Low, Level::High]);
        assert_eq!(
            serde_json::from_str::<Level>("\"mid\"").unwrap_err().to_string(),
            "unknown variant `mid`, expected `low` or `high`"
        );
    }
}
