//! Names for the addresses of slow calls' stacks, read in the address
//! space each call was made in.

pub mod address_space;
pub mod symbolize;
pub mod unwind;
