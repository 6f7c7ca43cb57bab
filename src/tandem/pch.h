// Precompiled header for Tandem's targets: the heavy LibTorch and Boost headers
// that most sources include anyway, parsed once per target instead of per file.
#pragma once

#include <ATen/ATen.h>
#include <boost/program_options.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/optimizer.h>
