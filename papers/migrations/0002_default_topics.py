"""A starting set of topics; editors refine the rules in the admin, then run retag_papers."""

from django.db import migrations

TOPICS = [
    ("reinforcement-learning", "Reinforcement learning", "Agents that learn from reward: deep RL, policy optimisation, offline RL.",
     ["reinforcement learning", "deep rl", "offline rl", "q-learning", "q-network", "q-networks", "dqn", "policy gradient",
      "policy optimization", "reward function", "markov decision process", "bellman", "actor-critic", "multi-agent reinforcement"], ""),
    ("llms-reasoning", "LLMs & reasoning", "Large language models, reasoning, alignment and preference learning.",
     ["large language model", "large language models", "llm", "llms", "language model", "language models", "chain-of-thought",
      "chain of thought", "reasoning model", "in-context learning", "instruction tuning", "human feedback", "rlhf", "dpo",
      "preference optimization", "transformer language"], "cs.CL"),
    ("quantization-compression", "Quantization & compression", "Making models smaller and cheaper: quantization, pruning, distillation.",
     ["quantization", "quantized", "quantization-aware", "post-training quantization", "low-bit", "1-bit", "4-bit", "int8",
      "int4", "pruning", "knowledge distillation", "model compression", "network compression", "sparsity", "binarized"], ""),
    ("computer-vision", "Computer vision", "Images, video and 3D: recognition, segmentation, generation.",
     ["computer vision", "image classification", "object detection", "semantic segmentation", "point cloud", "point clouds",
      "image", "images", "video", "visual", "convolutional neural network"], "cs.CV"),
    ("robotics", "Robotics", "Robots, drones and autonomous vehicles: control, navigation, manipulation.",
     ["robot", "robots", "robotic", "robotics", "quadrotor", "drone", "uav", "manipulation", "locomotion", "autonomous driving",
      "collision avoidance", "prosthetic", "sim-to-real"], "cs.RO"),
    ("security", "Security & privacy", "Attacks and defences: adversarial examples, jamming, privacy, cyber security.",
     ["security", "cyber security", "cybersecurity", "adversarial attack", "adversarial attacks", "black-box attack", "jamming",
      "jammer", "jammers", "privacy", "malware", "backdoor", "intrusion detection"], "cs.CR"),
    ("efficient-architectures", "Efficient architectures & AutoML", "Architecture search, efficient inference and hardware-aware design.",
     ["neural architecture search", "architecture search", "automl", "hardware-friendly", "efficient inference",
      "search space", "edge devices", "latency", "neuroevolution", "genetic algorithm", "genetic algorithms"], ""),
    ("games-agents", "Games & agents", "Agents that act: games, web and device control, tool use.",
     ["game", "games", "atari", "mario", "roguelike", "npc", "web agent", "web navigation", "device-control", "software engineering",
      "agents"], ""),
    ("knowledge-graphs", "Graphs & knowledge", "Graph learning, knowledge graphs and logical query answering.",
     ["knowledge graph", "knowledge graphs", "graph neural network", "graph neural networks", "link prediction",
      "link predictors", "query answering", "relational reasoning", "relational networks"], "cs.DB"),
    ("deep-learning-foundations", "Deep learning foundations", "How and why deep networks train: optimisation, expressivity, generalisation.",
     ["expressivity", "trainability", "gradient noise", "synthetic gradients", "generalization", "adaptive computation",
      "regularization", "representation rank", "training dynamics", "optimizer", "very deep networks", "ponder"], "stat.ML"),
    ("applications", "Applied ML", "Machine learning in science, finance and industry.",
     ["trading", "portfolio", "finance", "protein", "biology", "medical", "healthcare", "brain-computer", "eeg", "remote sensing",
      "iot"], "q-fin.TR q-bio.BM"),
]


def create(apps, schema_editor):
    Topic = apps.get_model("papers", "Topic")
    for position, (slug, name, description, keywords, categories) in enumerate(TOPICS):
        Topic.objects.update_or_create(
            slug=slug,
            defaults={"name": name, "description": description, "keywords": "\n".join(keywords),
                      "categories": categories, "position": position},
        )


def remove(apps, schema_editor):
    apps.get_model("papers", "Topic").objects.filter(slug__in=[t[0] for t in TOPICS]).delete()


class Migration(migrations.Migration):
    dependencies = [("papers", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
