//! Integration tests: every behaviour that forks, signals or reaps is checked
//! through the real herd binary.

mod control;
mod faults_control;
mod formation;
mod group;
mod health;
mod input;
mod listen;
mod live;
mod loop_faults;
mod notify;
mod orphans;
mod output;
mod persona;
mod reload;
mod rootless;
mod run;
mod stop;
mod util;
mod watchdog;
