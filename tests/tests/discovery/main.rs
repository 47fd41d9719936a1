//! The discovery agents: convergence from DNS, seeds and gossip, faults, restarts and
//! authentication.

mod convergence;
mod faults;
mod restart;
mod security;
